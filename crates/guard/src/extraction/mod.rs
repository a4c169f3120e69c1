//! Model-extraction detection (see docs/extraction.md).
