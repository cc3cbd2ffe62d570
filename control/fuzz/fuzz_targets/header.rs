#![no_main]
//! The prefix and proxy header: `Frame::parse` and the zero-copy view.

use libfuzzer_sys::fuzz_target;
use pias_control::wire::header::HeaderView;
use pias_control::wire::Frame;

fuzz_target!(|data: &[u8]| {
    let v = HeaderView::new_unchecked(data);
    let _ = (
        v.version(),
        v.type_byte(),
        v.length(),
        v.sender(),
        v.key_id(),
        v.flags(),
        v.epoch(),
        v.seq(),
    );
    if let Ok(f) = Frame::parse(data) {
        assert_eq!(f.covered.len() + f.trailer.len(), data.len());
        assert_eq!(f.trailer.len(), f.msg_type.auth_class().trailer_len());
        assert_eq!(
            f.covered.len() - f.body.len(),
            f.msg_type.auth_class().header_len()
        );
        assert_eq!(v.length().map(usize::from), Some(data.len()));
        if let Some(h) = f.proxy {
            assert_eq!(v.sender(), Some(h.sender));
            assert_eq!(v.seq(), Some(h.seq));
        }
    }
});
