//! The gateway's configuration file on arbitrary text: parsing and `validate()` (which also builds
//! the route table) must return problems naming keys, never panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match gateway::Config::parse(text) {
        Ok(config) => {
            for problem in config.validate() {
                assert!(
                    !problem.key.is_empty(),
                    "a problem without a key: {problem:?}"
                );
            }
        }
        Err(problems) => {
            assert!(
                !problems.is_empty(),
                "a parse failure must say what is wrong"
            );
        }
    }
});
