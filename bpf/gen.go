// Package bpf holds capsrec's BPF programs and loads and attaches them.
package bpf

//go:generate go tool bpf2go -target amd64,arm64 -cc clang -cflags "-O2 -g -Wall -Werror" -type cap_event -type ctx_event -type exec_event -type fork_event -type exit_event -type event_header -type check_stats -type agg_key -type agg_value -type site_range -type exe_key -type learn_event -type frame_info -type walk_state -type walk_cache -type event_type -type check_class -type site_kind -type ns_index -type runtime_mark -type ns_answer -type attach_method -type runtime_mark_bits -type verdict_filter -type cgroup_filter_mode -type capset_pending capsrec capsrec.bpf.c -- -I/usr/include/x86_64-linux-gnu
