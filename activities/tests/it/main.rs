//! The activities' integration tests, in one binary: the transcoder against real media
//! (`transcode`), parts joined into one MP3 (`join`), and a part read in place from storage
//! (`in_place`).

mod in_place;
mod join;
mod transcode;
