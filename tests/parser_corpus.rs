//! Real-world Dockerfiles (`../shared/conformance/corpus/realworld`): every
//! one must parse and lower to typed instructions without error — except
//! docker-library jq templates that slipped into the corpus (a `{{ … }}`
//! block as first line, e.g. mysql's root `Dockerfile.oracle`), which are
//! not Dockerfiles: BuildKit rejects them too (`unknown instruction: {{`),
//! and so must we, pointing at line 1.

mod support;

use builder::dockerfile::{self, dump, instructions::InstructionKind};

#[test]
fn every_real_world_dockerfile_parses_and_lowers() {
    let Some(dir) = support::conformance_dir("corpus/realworld") else {
        return;
    };
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus folder is readable")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .collect();
    files.sort();
    assert!(
        files.len() > 100,
        "expected the corpus, found {} files",
        files.len()
    );
    let mut failures = Vec::new();
    let mut instructions = 0;
    for file in &files {
        let bytes = std::fs::read(file).expect("Dockerfile is readable");
        let name = file.display().to_string();
        if bytes.starts_with(b"{{") {
            let err = dockerfile::parse_bytes(&name, &bytes).expect_err("a jq template");
            assert_eq!((err.line(), err.column()), (1, 1), "{name}");
            assert!(
                err.to_string().ends_with("unknown instruction: {{"),
                "{err}"
            );
            continue;
        }
        match dockerfile::parse_bytes(&name, &bytes).and_then(|t| {
            let lowered = dockerfile::lower(&t)?;
            Ok((t, lowered))
        }) {
            Ok((tree, lowered)) => {
                // The dump has one line per instruction, and every stage
                // keeps the instructions in it.
                assert_eq!(dump::dump(&tree).lines().count(), tree.nodes.len());
                let lowered_count: usize = lowered.meta_args.len()
                    + lowered
                        .stages
                        .iter()
                        .map(|s| 1 + s.instructions.len())
                        .sum::<usize>();
                assert_eq!(lowered_count, tree.nodes.len(), "{name}");
                instructions += lowered_count;
            }
            Err(e) => failures.push(format!("{e:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(instructions > files.len());
}

#[test]
fn modern_buildkit_syntax_in_the_corpus_is_typed() {
    let Some(dir) = support::conformance_dir("corpus/realworld") else {
        return;
    };
    let bytes = std::fs::read(dir.join("buildkit__Dockerfile.Dockerfile")).expect("readable");
    let file = dockerfile::load("Dockerfile", &bytes).expect("BuildKit's Dockerfile loads");
    assert!(file.directives.syntax.is_some());
    assert!(!file.meta_args.is_empty());
    let run_mounts = file
        .stages
        .iter()
        .flat_map(|s| &s.instructions)
        .filter_map(|i| match &i.kind {
            InstructionKind::Run(run) => Some(run.mounts.len()),
            _ => None,
        })
        .sum::<usize>();
    assert!(run_mounts > 0, "BuildKit's Dockerfile uses RUN --mount");
}
