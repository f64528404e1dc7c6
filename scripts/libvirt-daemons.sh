# Sourced by scripts that may start libvirtd and virtlogd (directly or
# through the tests): `leave_libvirt_as_found` notes which daemons run now
# and, when the script exits, stops by pid only the ones that started since
# (a daemon that was running before is left alone).
libvirt_daemon_pids() { pgrep -x libvirtd || true; pgrep -x virtlogd || true; }
leave_libvirt_as_found() {
  libvirt_daemons_before=" $(libvirt_daemon_pids | tr '\n' ' ')"
  trap stop_libvirt_daemons_started_since EXIT
}
stop_libvirt_daemons_started_since() {
  local p
  for p in $(libvirt_daemon_pids); do
    case "$libvirt_daemons_before" in *" $p "*) ;; *) kill "$p" 2>/dev/null || true ;; esac
  done
}
