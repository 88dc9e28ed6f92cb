//go:build !linux

package main

import "syscall"

// childSysProcAttr: outside Linux there is no parent-death signal; the
// harness still stops its children on every normal exit and on SIGINT.
func childSysProcAttr() *syscall.SysProcAttr { return nil }
