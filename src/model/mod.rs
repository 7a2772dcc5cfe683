//! Models: configs, encoders, task heads, checkpoint loading/saving and hub resolution.
pub mod bert;
pub mod checkpoint;
pub mod config;
pub mod deberta;
pub mod dropout;
pub mod encoder;
pub mod heads;
pub mod download;
pub mod hub;
pub mod hub_download;
pub mod linear;
pub mod modernbert;
pub mod pypi;
pub mod quantize;
pub mod student;
pub mod unpad;
pub mod vision;
