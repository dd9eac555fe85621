//! The committed shell completions and man pages match what the current flags generate.
//! Refresh them with `scripts/gen-docs`.

use std::process::Command;

fn kamshub(args: &[&str]) -> Vec<u8> {
    let out = Command::new(assert_cmd::cargo::cargo_bin("kamshub")).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn completions_are_fresh() {
    for (shell, file) in [("bash", "kamshub.bash"), ("zsh", "_kamshub"), ("fish", "kamshub.fish")] {
        let committed = std::fs::read(format!("completions/{file}")).unwrap();
        assert!(kamshub(&["completions", shell]) == committed, "completions/{file} is stale: run scripts/gen-docs");
    }
}

#[test]
fn man_pages_are_fresh() {
    let dir = tempfile::tempdir().unwrap();
    kamshub(&["man", "--out-dir", dir.path().to_str().unwrap()]);
    let mut generated: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    generated.sort();
    let mut committed: Vec<String> =
        std::fs::read_dir("man").unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    committed.sort();
    assert_eq!(generated, committed, "man/ has other pages than the flags generate: run scripts/gen-docs");
    assert!(generated.contains(&"kamshub-channel-add.1".to_owned()));
    for page in generated {
        let fresh = std::fs::read(dir.path().join(&page)).unwrap();
        assert!(fresh == std::fs::read(format!("man/{page}")).unwrap(), "man/{page} is stale: run scripts/gen-docs");
    }
}
