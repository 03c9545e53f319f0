//! `uniffi-bindgen generate --library libparq_ffi.so --language kotlin|swift --out-dir …`: the
//! bindings generator at the exact uniffi version parq-ffi is built with.

fn main() {
    uniffi::uniffi_bindgen_main()
}
