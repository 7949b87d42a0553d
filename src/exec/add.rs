//! `ADD` (placeholder replaced below).
