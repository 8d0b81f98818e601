//! `pullAuth` and `registries[].private`: the htpasswd file is checked at start, errors name
//! the key, the config file, the htpasswd file and the line.

use super::*;

fn bcrypt_entry(user: &str) -> String {
    let hash = bcrypt::hash_with_result("pw", 4)
        .expect("hash")
        .format_for_version(bcrypt::Version::TwoY);
    format!("{user}:{hash}\n")
}

fn htpasswd(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(text.as_bytes()).expect("write");
    f.flush().expect("flush");
    f
}

#[test]
fn pull_auth_reads_the_users_and_the_private_registries() {
    let users = htpasswd(&format!("{}{}", bcrypt_entry("alice"), bcrypt_entry("bob")));
    let config = load_yaml(&format!(
        "pullAuth:\n  htpasswd: {}\n  realm: lab cache\nregistries:\n- name: Private.Example\n  \
         private: true\n- name: open.example\n  private: false\n- name: index.docker.io\n  \
         private: true\n",
        users.path().display()
    ))
    .unwrap();
    let auth = config.pull_auth.expect("pullAuth");
    assert_eq!(auth.realm, "lab cache");
    assert_eq!(auth.users.len(), 2);
    assert!(auth.users.hash_of("alice").is_some());
    assert_eq!(auth.private, vec!["private.example", "docker.io"]);
    assert_eq!(auth.htpasswd, users.path());

    let plain = load_yaml(&format!(
        "pullAuth:\n  htpasswd: {}\n",
        users.path().display()
    ))
    .unwrap()
    .pull_auth
    .expect("pullAuth");
    assert_eq!(plain.realm, "ociregistry");
    assert!(plain.private.is_empty(), "no private registry: every pull");
    assert_eq!(load_yaml("port: 8080\n").unwrap().pull_auth, None);
}

#[test]
fn a_bad_htpasswd_file_is_refused_naming_it_and_the_line() {
    let md5 = htpasswd(&format!(
        "{}bob:$apr1$r31.....$HqJZimcKQFAMYayBlzkrA/\n",
        bcrypt_entry("alice")
    ));
    let md5_path = md5.path().display().to_string();
    load_err(
        &format!("pullAuth:\n  htpasswd: {md5_path}\n"),
        &[
            "pullAuth.htpasswd",
            &md5_path,
            "line 2",
            "MD5",
            "htpasswd -B",
        ],
    );
    let broken = htpasswd("just-a-name\n");
    let broken_path = broken.path().display().to_string();
    load_err(
        &format!("pullAuth:\n  htpasswd: {broken_path}\n"),
        &["pullAuth.htpasswd", &broken_path, "line 1", "user:hash"],
    );
    load_err(
        "pullAuth:\n  htpasswd: /nonexistent/ociregistry-htpasswd\n",
        &[
            "pullAuth.htpasswd",
            "/nonexistent/ociregistry-htpasswd",
            "cannot read",
        ],
    );
    load_err(
        "pullAuth:\n  realm: x\n",
        &["pullAuth.htpasswd", "is required"],
    );
}

#[test]
fn private_needs_pull_auth_and_keys_are_checked() {
    load_err(
        "registries:\n- name: a.io\n- name: b.io\n  private: true\n",
        &["registries[1].private", "needs pullAuth"],
    );
    load_err(
        "registries:\n- name: a.io\n  private: yes-please\n",
        &["registries[0].private"],
    );
    unknown_key("pullAuth:\n  htpassword: /x\n", "pullAuth.htpassword");
    let users = htpasswd(&bcrypt_entry("alice"));
    load_err(
        &format!(
            "pullAuth:\n  htpasswd: {}\n  realm: 'say \"hi\"'\n",
            users.path().display()
        ),
        &["pullAuth.realm", "quotes"],
    );
    load_err("pullAuth: 5\n", &["pullAuth", "mapping"]);
}
