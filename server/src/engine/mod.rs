//! The render graph: tracks → buses → mix → master → deliverables.
