pub mod edge;
pub mod origin;
