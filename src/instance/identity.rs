//! Who this process is among instances on several machines, and when it
//! may judge another instance by its process rather than its heartbeat.
//!
//! - **Host name**: `gethostname(2)`. `/proc/sys/kernel/hostname` is hidden
//!   by the shipped unit's `ProcSubset=pid`; the system call is not (and
//!   `ProtectHostname=yes` keeps the host's name, only forbids changing it).
//! - **Machine id**: `/etc/machine-id` (readable under `ProtectSystem=strict`).
//! - **Boot id**: `/proc/sys/kernel/random/boot_id` when readable; under
//!   `ProcSubset=pid` it is not (all of `/proc/sys` and `/proc/stat` are
//!   hidden), so the shipped unit passes systemd's `%b` specifier (the same
//!   id) as `KURYER_INSTANCE_BOOT_ID`; failing both, the boot instant
//!   `CLOCK_REALTIME − CLOCK_BOOTTIME` in whole seconds (`boot-time:<s>`).
//!   That one may differ between two processes of one boot (a clock step):
//!   then they only judge each other by heartbeat, the safe side.
//! - **PID namespace** (`/proc/self/ns/pid`): it alone says nothing across
//!   machines (every host's initial namespace has the same inode), but two
//!   containers of one machine and boot see different PIDs: it stays a third
//!   part of "the same process space".
//!
//! An instance is judged gone by its process only when machine id, boot id
//! and PID namespace are all known and all equal to this process's, and
//! `kill(pid, 0)` answers "no such process". Otherwise only its heartbeat
//! (by PostgreSQL's clock) says it is dead.

use crate::config::InstanceConfig;
use crate::store::InstanceIdentity;

/// This process as recorded in its `instances` row.
pub fn of_this_process(cfg: &InstanceConfig) -> InstanceIdentity {
    InstanceIdentity {
        host_name: cfg.host_name.clone().unwrap_or_else(host_name),
        machine_id: cfg.machine_id.clone().or_else(machine_id),
        boot_id: cfg.boot_id.clone().or_else(boot_id),
        pid_ns: pid_namespace(),
        pid: std::process::id(),
        incarnation: rand::random::<u64>() as i64 & i64::MAX,
    }
}

/// The default instance id: host name and process id.
pub fn default_id(identity: &InstanceIdentity) -> String {
    format!("{}:{}", identity.host_name, identity.pid)
}

/// The host name, from `gethostname(2)`; `host` when it cannot be read.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "host".to_owned();
    }
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    match std::str::from_utf8(&buf[..end]) {
        Ok(h) if !h.trim().is_empty() => h.trim().to_owned(),
        _ => "host".to_owned(),
    }
}

fn read_id(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty() && s != "uninitialized")
}

/// `/etc/machine-id` (or D-Bus' copy of it).
pub fn machine_id() -> Option<String> {
    read_id("/etc/machine-id").or_else(|| read_id("/var/lib/dbus/machine-id"))
}

/// The kernel's boot id, or the boot instant when `/proc/sys` is hidden.
pub fn boot_id() -> Option<String> {
    read_id("/proc/sys/kernel/random/boot_id").or_else(boot_time)
}

fn boot_time() -> Option<String> {
    let now = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: `ts` is a valid timespec to write into.
        (unsafe { libc::clock_gettime(clock, &mut ts) } == 0)
            .then(|| ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9)
    };
    let real = now(libc::CLOCK_REALTIME)?;
    let since_boot = now(libc::CLOCK_BOOTTIME)?;
    Some(format!("boot-time:{}", (real - since_boot).round() as i64))
}

/// This process's PID namespace (`pid:[4026531836]`), when readable.
pub fn pid_namespace() -> Option<String> {
    std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Whether `other` runs in this process's process space: same machine,
/// same boot, same PID namespace, each known. Only then do its PIDs mean
/// anything here.
pub fn same_process_space(me: &InstanceIdentity, other: &InstanceIdentity) -> bool {
    fn same(a: &Option<String>, b: &Option<String>) -> bool {
        matches!((a, b), (Some(a), Some(b)) if a == b)
    }
    same(&me.machine_id, &other.machine_id)
        && same(&me.boot_id, &other.boot_id)
        && same(&me.pid_ns, &other.pid_ns)
}

/// Whether process `pid` of this process space has exited: `kill(pid, 0)`
/// answers ESRCH. Works under `ProtectProc=invisible` (no `/proc` look-up);
/// a process of another user answers EPERM, which is "alive".
pub fn process_gone(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 || pid as u32 == std::process::id() {
        return false;
    }
    // SAFETY: signal 0 sends nothing; it only checks the pid.
    let rc = unsafe { libc::kill(pid, 0) };
    rc != 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
}

/// Whether the instance recorded as `other` is surely dead by its process:
/// in this process space, not this process, and its process has exited.
pub fn judged_gone(me: &InstanceIdentity, other: &InstanceIdentity) -> bool {
    same_process_space(me, other) && other.pid != me.pid && process_gone(other.pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn me() -> InstanceIdentity {
        of_this_process(&InstanceConfig {
            machine_id: Some("m-1".into()),
            boot_id: Some("b-1".into()),
            ..InstanceConfig::default()
        })
    }

    #[test]
    fn the_host_name_comes_from_the_system_call() {
        let h = host_name();
        assert!(!h.is_empty() && h != "host", "{h}");
        assert_eq!(default_id(&me()), format!("{h}:{}", std::process::id()));
    }

    #[test]
    fn a_process_of_another_machine_or_boot_is_never_judged_gone() {
        let me = me();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert!(process_gone(pid));
        let here = InstanceIdentity { pid, ..me.clone() };
        assert!(judged_gone(&me, &here), "same machine, boot and namespace");
        let elsewhere = InstanceIdentity {
            pid,
            machine_id: Some("m-2".into()),
            ..me.clone()
        };
        assert!(!judged_gone(&me, &elsewhere), "another machine");
        let rebooted = InstanceIdentity {
            pid,
            boot_id: Some("b-2".into()),
            ..me.clone()
        };
        assert!(!judged_gone(&me, &rebooted), "another boot");
        let unknown = InstanceIdentity {
            pid,
            machine_id: None,
            ..me.clone()
        };
        assert!(!judged_gone(&unknown, &unknown.clone()), "unknown machine");
        assert!(!judged_gone(&me, &me), "this process");
        assert!(!process_gone(std::process::id()));
    }

    #[test]
    fn the_boot_id_has_a_fallback_when_proc_sys_is_hidden() {
        let t = boot_time().unwrap();
        assert!(t.starts_with("boot-time:"), "{t}");
        assert!(boot_id().is_some());
    }
}
