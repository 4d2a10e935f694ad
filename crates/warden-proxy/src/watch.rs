//! Hot reload on file changes: the policy directory is watched (inotify on Linux); a burst of
//! changes (an editor's save, a `git pull`) is debounced into one reload, which compiles off the
//! request path and swaps atomically, or is refused with the old set kept serving.

use crate::proxy::Shared;
use notify::{EventKind, RecursiveMode, Watcher};
use std::sync::Arc;
use std::time::Duration;

/// How long the directory must be quiet before a reload.
const DEBOUNCE: Duration = Duration::from_millis(250);

/// Starts watching the policy directory. The watcher lives as long as the returned task.
pub fn spawn(shared: Arc<Shared>) -> Result<(), String> {
    let dir = shared.config.policies.clone();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(ev) = res {
            if matches!(ev.kind, EventKind::Create(_) | EventKind::Modify(_) | EventKind::Remove(_)) {
                let _ = tx.send(());
            }
        }
    })
    .map_err(|e| format!("cannot watch the policy directory: {e}"))?;
    watcher
        .watch(&dir, RecursiveMode::Recursive)
        .map_err(|e| format!("cannot watch {}: {e} (set watch_policies: false to do without)", dir.display()))?;
    tokio::spawn(async move {
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            while let Ok(Some(())) = tokio::time::timeout(DEBOUNCE, rx.recv()).await {}
            let _ = crate::reload(&shared).await;
        }
    });
    Ok(())
}
