//! `uniffi-bindgen-swift libparq_ffi.a out/ --swift-sources --headers --modulemap --xcframework`:
//! the Swift sources, the C header and an xcframework-ready modulemap.

fn main() {
    uniffi::uniffi_bindgen_swift()
}
