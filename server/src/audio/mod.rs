//! Audio in and out: decode (symphonia), resample (rubato), encode (WAV via hound, FLAC).
