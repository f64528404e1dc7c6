//! Unit tests over synthetic dump files built by [`build`].

mod bitmap;
mod build;
mod formats;
