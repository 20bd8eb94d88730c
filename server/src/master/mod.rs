//! Mastering: the `[master]` chain, loudness normalisation, deliverables, QC reports.
