//! End-to-end tests: the real `bounced`, the real `bounce`, real files.
