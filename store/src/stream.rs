//! How an object's bytes are read.

use bytes::Bytes;
use futures::Stream;
use std::{io, pin::Pin};

/// A stream of an object's bytes.
pub type ObjectBody = Pin<Box<dyn Stream<Item = io::Result<Bytes>> + Send>>;
