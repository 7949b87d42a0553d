//! The `oci-layout` header file that marks a directory as an OCI image
//! layout (image-spec `image-layout.md`).

use oci_spec::image::{OciLayout, OciLayoutBuilder};

/// The image layout version builder writes.
pub const LAYOUT_VERSION: &str = "1.0.0";

/// The contents of the `oci-layout` file.
pub fn layout_header() -> OciLayout {
    OciLayoutBuilder::default()
        .image_layout_version(LAYOUT_VERSION)
        .build()
        .expect("the only required field is set")
}
