package app

import (
	"fmt"
	"os"
	"path/filepath"

	"petrel/internal/lib/safefile"
)

// Defaults of an installed Petrel (the Debian package and `petrel quickstart`).
const (
	InstalledBinary = "/usr/bin/petrel"
	InstalledConfig = "/etc/petrel/petrel.toml"
	InstalledData   = "/var/lib/petrel"
	ServiceUser     = "petrel"
	UnitPath        = "/etc/systemd/system/petrel.service"
)

// SystemdUnit is the hardened unit that runs `petrel serve`. It runs as the petrel user from
// the first instruction, with CAP_NET_BIND_SERVICE as its only capability for ports below
// 1024, so the config leaves `user` unset (the switch from root is for starts without
// systemd). dist/systemd/petrel.service is this text with the installed paths, held equal
// by a test, which also runs systemd-analyze verify on it.
func SystemdUnit(binary, configFile, dataDir string) string {
	return fmt.Sprintf(`# Petrel mail server: SMTP, submission, POP3 and IMAP in one process.
# Written by petrel quickstart or installed by the Debian package; see README ("Running it
# on a host").
[Unit]
Description=Petrel mail server
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=%[1]s -c %[2]s serve
# SIGHUP re-reads the certificate and key.
ExecReload=/bin/kill -HUP $MAINPID
Restart=on-failure
RestartSec=5s
# Transactions in flight get this long to finish at stop.
TimeoutStopSec=45s
User=%[4]s
Group=%[4]s
UMask=0077
LimitNOFILE=65536

# Ports below 1024 are the only privilege it needs.
AmbientCapabilities=CAP_NET_BIND_SERVICE
CapabilityBoundingSet=CAP_NET_BIND_SERVICE
NoNewPrivileges=yes

# The whole file system read-only but the data directory; no home directories, a
# private /tmp and /dev.
ProtectSystem=strict
ReadWritePaths=%[3]s
ProtectHome=yes
PrivateTmp=yes
PrivateDevices=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
ProcSubset=pid
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX

# System calls: what a network service needs, minus privileged ones; a call outside the
# list fails with EPERM instead of killing the process (the Go runtime probes a few).
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources @mount @swap @reboot @raw-io @module @obsolete
SystemCallErrorNumber=EPERM

[Install]
WantedBy=multi-user.target
`, binary, configFile, dataDir, ServiceUser)
}

// WriteSelfSigned writes a self-signed certificate for hostname and its key (0600), for a
// host that has no certificate from a CA yet. Neither file may exist.
func WriteSelfSigned(certFile, keyFile, hostname string) error {
	certPEM, keyPEM, err := selfSigned(hostname)
	if err != nil {
		return err
	}
	if err := mkdirFor(keyFile); err != nil {
		return err
	}
	if err := safefile.WriteAtomic(keyFile, keyPEM, 0o600); err != nil {
		return err
	}
	return safefile.WriteAtomic(certFile, certPEM, 0o644)
}

func mkdirFor(path string) error {
	return os.MkdirAll(filepath.Dir(path), 0o755)
}
