//go:build auditstub

package main

type auditCmd struct{}
