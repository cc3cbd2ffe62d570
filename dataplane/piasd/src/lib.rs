//! placeholder: being built.
