//! The gRPC service: stem store, job queue, render service, auth.
