//! Writing a [`crate::image::LabImage`] in each dump format (skeleton).
