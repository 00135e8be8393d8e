//! UniFFI's bindings generator, built against the same uniffi version as
//! the library: `uniffi-bindgen generate --library libimbox_ffi.so
//! --language kotlin --out-dir DIR` (see `make bindings`).

fn main() {
    uniffi::uniffi_bindgen_main()
}
