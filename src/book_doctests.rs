//! Compiles and runs every Rust sample of the book (`book/src/*.md`) as a doctest, so the
//! book cannot drift from the code. One `#[doc = include_str!]` module per chapter.
