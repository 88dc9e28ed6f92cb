//go:build linux

package main

import "syscall"

// childSysProcAttr makes the kernel kill a child when the harness dies,
// even by SIGKILL, so no server outlives it.
func childSysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
