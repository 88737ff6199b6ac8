/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The call-site walk: which kernel function asked for a capability, and
 * whether its answer gates anything. A fast walk over frames learned from the
 * kernel's unwinder, checked against it now and then. Included by
 * capsrec.bpf.c, whose maps and helpers it uses.
 */
#ifndef __CAPSREC_CALLSITE_H
#define __CAPSREC_CALLSITE_H

/*
 * The kind of the function holding ip: a binary search over the sorted ranges.
 * A global function: the verifier checks it once, not at every frame of every
 * walk (that took it 600 ms a load).
 */
__noinline __u32 kind_at(__u64 ip)
{
	__u32 lo = 0, hi = n_sites;
	struct site_range *r;

	for (int i = 0; i < 7; i++) { /* log2(MAX_SITES) */
		if (lo + 1 >= hi)
			break;
		__u32 mid = (lo + hi) / 2, key = mid;
		r = bpf_map_lookup_elem(&site_ranges, &key);
		if (!r)
			return SITE_UNKNOWN;
		if (r->start <= ip)
			lo = mid;
		else
			hi = mid;
	}
	__u32 key = lo;
	r = bpf_map_lookup_elem(&site_ranges, &key);
	if (r && r->start <= ip && ip < r->end)
		return r->kind;
	return SITE_UNKNOWN;
}

struct call_site {
	__u64 ip;
	__u64 via; /* return address into the last plumbing function: the one the call site called (capable, ns_capable, ...) */
	bool probe;
	bool capset; /* cap_capset: need or probe by the call's arguments (capset_gates) */
	bool failed;
};

/*
 * Finds, in the return addresses ips[0..n), the kernel function that asked for
 * the capability and whether it only probes. The stack from the hook reads: BPF
 * program and tracing glue, then cap_capable (tracepoint, kprobe) or its caller
 * (fexit), then the capability plumbing (security_capable, ns_capable, capable,
 * ...), then the caller. An unknown caller is a need: nothing is hidden that
 * cannot be classified.
 */
static __always_inline struct call_site classify_ips(__u64 *ips, long n)
{
	struct call_site cs = {};
	bool preamble = true;

	if (n <= 0) {
		cs.failed = true;
		return cs;
	}
	n /= sizeof(__u64);
	for (int i = 0; i < STACK_DEPTH; i++) {
		if (i >= n)
			break;
		__u64 ip = ips[i];
		bool core = ip >= text_start && ip < text_end;
		/* Return addresses point past the call, perhaps into the next function; a kprobe's
		 * first frame is the probed address itself. */
		__u32 kind = core ? kind_at(i == 0 ? ip : ip - 1) : SITE_UNKNOWN;

		if (preamble) {
			if (!core || kind == SITE_GLUE)
				continue;
			preamble = false;
		}
		if (kind == SITE_PLUMBING) {
			cs.via = ip;
			continue;
		}
		cs.ip = ip;
		cs.probe = kind == SITE_PROBE;
		cs.capset = kind == SITE_CAPSET;
		break;
	}
	return cs;
}

/* The kernel's unwinder: exact, and about 2 us a check (bpf_get_stack). ips
 * (STACK_DEPTH of them) keeps the return addresses, *n their size in bytes. */
static __always_inline struct call_site unwind_call_site(void *ctx, __u64 *ips, long *n)
{
	*n = bpf_get_stack(ctx, ips, STACK_DEPTH * sizeof(__u64), 0);
	return classify_ips(ips, *n);
}

/*
 * The unwinder at a kprobe on cap_capable's entry. On arm64 the return address
 * into its caller is still in the link register there, not yet in a frame
 * record, and the unwinder (which follows frame records from the frame pointer)
 * skips that caller: it is put back after the probed address, its pointer
 * authentication code stripped (kernel text has every bit from 48 up set). The
 * kprobe runs before the kretprobe replaces it (attached in that order).
 */
static __always_inline struct call_site unwind_kprobe_call_site(struct pt_regs *ctx, __u64 *ips, long *n)
{
	if (!KPROBE_CALLER_IN_LR)
		return unwind_call_site(ctx, ips, n);
	*n = bpf_get_stack(ctx, ips, (STACK_DEPTH - 1) * sizeof(__u64), 0);
	if (*n < (long)(2 * sizeof(__u64)) || *n > (long)((STACK_DEPTH - 1) * sizeof(__u64)))
		return classify_ips(ips, *n);
	__u64 lr = PT_REGS_RET(ctx) | 0xffff000000000000ULL;
	if (ips[1] != lr) {
		for (int i = STACK_DEPTH - 1; i > 1; i--)
			ips[i] = ips[i - 1];
		ips[1] = lr;
		*n += sizeof(__u64);
	}
	return classify_ips(ips, *n);
}

/*
 * Reads the raw kernel stack above anchor into the window, never past the top of
 * the task's stack. Returns how many words it read (0: none).
 */
static __always_inline __u32 read_window(struct learn_event *le, void *anchor)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 top = (__u64)BPF_CORE_READ(task, stack) + THREAD_SIZE;
	__u32 len = sizeof(le->window);
	__u64 at;

	/* The anchor as a number: the verifier allows no arithmetic on a ctx pointer. */
	if (bpf_probe_read_kernel(&at, sizeof(at), &anchor) != 0)
		return 0;

	if (at < top && top - at < len)
		len = top - at;
	len &= ~7U;
	if (len == 0 || len > sizeof(le->window))
		return 0;
	if (bpf_probe_read_kernel(le->window, len, anchor) != 0)
		return 0;
	return len / 8;
}

enum walk_result { WALK_MISS_LEARN, WALK_FOUND, WALK_MISS };

/* window[idx], masked where the verifier sees it: the compiler would drop a mask
 * it can prove redundant, and the verifier cannot follow that proof. */
static __always_inline __u64 window_at(struct learn_event *le, __u32 idx)
{
	asm volatile("" : "+r"(idx));
	idx &= WALK_WORDS - 1;
	return le->window[idx];
}

/*
 * The fast walk: from the learned first slot, each learned pass-through frame
 * says where its caller's return address lies (its frame size at that call, a
 * fact of the compiled code), up to the first frame that is not glue or
 * plumbing: the call site. A frame it has not learned sends the check to the
 * unwinder and asks user space to learn it.
 */
static __always_inline enum walk_result fast_walk(struct learn_event *le, __u32 words, struct walk_state *ws,
						  struct call_site *cs, struct walk_cache *c)
{
	__u32 idx;

	c->n = 0;
	if (ws->anchor < 0) /* -1: not learned yet; less: cannot be */
		return ws->anchor == -1 ? WALK_MISS_LEARN : WALK_MISS;
	idx = (__u32)ws->anchor / 8;
	if (idx >= words || idx >= WALK_WORDS)
		return WALK_MISS;
	if (window_at(le, idx) != ws->anchor_value)
		return WALK_MISS;
	for (int i = 0; i < MAX_WALK; i++) {
		if (idx >= words || idx >= WALK_WORDS)
			return WALK_MISS;
		__u64 r = window_at(le, idx);
		struct frame_info *f = bpf_map_lookup_elem(&frames, &r);

		c->idx[i & (WALK_PATH - 1)] = idx;
		c->val[i & (WALK_PATH - 1)] = r;
		if (f) {
			if (f->delta <= 0 || (f->delta & 7))
				return WALK_MISS;
			if (f->kind == SITE_PLUMBING)
				cs->via = r;
			idx += f->delta / 8;
			continue;
		}
		__u32 kind = r >= text_start && r < text_end ? kind_at(r - 1) : SITE_UNKNOWN;
		if (kind == SITE_GLUE || kind == SITE_PLUMBING)
			return WALK_MISS_LEARN;
		cs->ip = r;
		cs->probe = kind == SITE_PROBE;
		cs->capset = kind == SITE_CAPSET;
		c->n = i + 1;
		c->words = idx + 1;
		c->site = cs->ip;
		c->via = cs->via;
		c->probe = cs->probe;
		c->capset = cs->capset;
		c->generation = ws->generation;
		return WALK_FOUND;
	}
	return WALK_MISS;
}

/* The last walk again, if every slot it read holds what it held then. */
static __always_inline bool cached_walk(struct learn_event *le, __u32 words, struct walk_state *ws,
					struct walk_cache *c, struct call_site *cs)
{
	__u32 n = c->n;

	if (n == 0 || n > MAX_WALK || c->generation != ws->generation)
		return false;
	for (int i = 0; i < MAX_WALK; i++) {
		if (i >= n)
			break;
		__u32 idx = c->idx[i & (WALK_PATH - 1)];
		if (idx >= words || window_at(le, idx) != c->val[i & (WALK_PATH - 1)])
			return false;
	}
	cs->ip = c->site;
	cs->via = c->via;
	cs->probe = c->probe;
	cs->capset = c->capset;
	return true;
}

/*
 * The call site of the check being made: the fast walk where it knows the way,
 * the unwinder where it does not (then user space learns from both). One fast
 * walk in cfg.verify_every is checked against the unwinder; a disagreement turns the
 * fast walk off for good, and is counted.
 */
static __always_inline struct call_site find_call_site(void *ctx, void *anchor, struct check_stats *st)
{
	struct call_site cs = {}, slow;
	enum walk_result got = WALK_MISS;
	struct learn_event *le;
	struct walk_state *ws;
	struct walk_cache *c;
	__u32 zero = 0, words = 0;
	__u64 ips[STACK_DEPTH];
	long n;

	if (!FAST_WALK) {
		st->slow_walks++;
		return unwind_call_site(ctx, ips, &n);
	}
	ws = bpf_map_lookup_elem(&walk_states, &zero);
	le = bpf_map_lookup_elem(&walk_scratch, &zero);
	c = bpf_map_lookup_elem(&walk_caches, &zero);
	if (!ws || !le || !c)
		return unwind_call_site(ctx, ips, &n);
	if (!ws->broken && c->n && c->generation == ws->generation) {
		/* Only the slots the last walk read: they lie on the stack wherever that
		 * walk holds, so no bound of the stack is needed (a fault is a miss). */
		__u32 words = c->words;
		asm volatile("" : "+r"(words)); /* keep the bound where the verifier sees it */
		if (words > 0 && words <= WALK_WORDS &&
		    bpf_probe_read_kernel(le->window, (((words - 1) & (WALK_WORDS - 1)) + 1) * 8, anchor) == 0 &&
		    cached_walk(le, words, ws, c, &cs))
			got = WALK_FOUND;
	}
	if (!ws->broken && got != WALK_FOUND) {
		words = read_window(le, anchor);
		if (words)
			got = fast_walk(le, words, ws, &cs, c);
	}
	if (got == WALK_FOUND) {
		st->fast_walks++;
		if (cfg.verify_every && st->fast_walks % cfg.verify_every == 0) {
			st->walk_verified++;
			slow = unwind_call_site(ctx, ips, &n);
			if (!slow.failed && (slow.ip != cs.ip || slow.probe != cs.probe || slow.capset != cs.capset)) {
				st->walk_mismatch++;
				if (!ws->broken) {
					ws->mismatch_fast = cs.ip;
					ws->mismatch_slow = slow.ip;
				}
				ws->broken = 1;
				return slow;
			}
		}
		return cs;
	}
	st->slow_walks++;
	cs = unwind_call_site(ctx, le->ips, &n);
	/* Until user space has learned, every check here would send a sample: one a
	 * millisecond per CPU is plenty, and keeps the ring buffer for checks. */
	__u64 now = bpf_ktime_get_ns();
	if (got == WALK_MISS_LEARN && words && n > 0 && now - c->last_learn > 1000000) {
		c->last_learn = now;
		le->hdr.type = EVENT_LEARN;
		le->hdr.tgid = 0;
		le->hdr.ktime = 0;
		le->n_ips = n / sizeof(__u64);
		le->n_words = words;
		bpf_ringbuf_output(&events, le, sizeof(*le), 0);
	}
	return cs;
}

#endif /* __CAPSREC_CALLSITE_H */
