//! The ACL's mapping file on arbitrary text: parsing and compiling against the contracts must
//! return an error naming the key, never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(e) = acl::Mapper::from_toml(text) {
        assert!(
            !e.to_string().is_empty(),
            "a mapping-file error must say what is wrong"
        );
    }
});
