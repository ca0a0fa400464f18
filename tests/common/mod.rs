//! Test helpers shared by the integration tests: each test file uses what it needs.
#![allow(dead_code)]

pub mod dns;
pub mod edge;
pub mod geo;
pub mod health;
pub mod origin;
