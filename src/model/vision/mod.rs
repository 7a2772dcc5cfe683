//! Image backbones in tch's nn style with torchvision's tensor names, so ImageNet checkpoints load
//! without a name map.
pub mod resnet;
