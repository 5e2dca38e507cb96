#![forbid(unsafe_code)]
pub mod x {}
