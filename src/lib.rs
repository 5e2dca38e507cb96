#![forbid(unsafe_code)]
pub mod x {}
pub mod sim;
