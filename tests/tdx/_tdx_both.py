"""Drive the C TDX model and the pure-Python reference model with the same
operations and return both answers in one normalised form."""
from unaccepted.errors import UnacceptedError
from unaccepted.tdx import TdxGuest
from unaccepted.testing import tdx_reference as ref

SIM = {"RANGE": 3, "STATE": 13, "HOST": 36}
K4, M2, G1 = ref.K4, ref.M2, ref.G1


def _c(fn):
    try:
        return fn()
    except UnacceptedError as e:
        return ("ERR", e.status)


def _r(fn):
    try:
        return fn()
    except ref.SimError as e:
        return ("ERR", SIM[e.name])


class Both:
    """A C guest and a reference guest built from the same configuration."""

    def __init__(self, memory_bytes, *, backing="2M", initial="free", accept_1g=False,
                 finalized=True, pending_ve_disable=True, flexible=False, policy=0,
                 hp_busy_limit=0, vcpus=1, gpaw=52):
        self.c = TdxGuest(memory_bytes, backing=backing, initial=initial, accept_1g=accept_1g,
                          finalized=finalized, pending_ve_disable=pending_ve_disable,
                          flexible_pending_ve=flexible, vmm_policy=policy,
                          hp_busy_limit=hp_busy_limit, vcpus=vcpus, gpaw=gpaw)
        self.r = ref.RefTdx(memory_bytes, backing=1 if backing == "2M" else 0, initial=initial,
                            accept_1g=accept_1g, finalized=finalized,
                            pending_ve_disable=pending_ve_disable, flexible=flexible,
                            policy=policy, hp_busy_limit=hp_busy_limit, nvcpus=vcpus, gpaw=gpaw)
        self.mem = memory_bytes

    # every method returns (c_answer, ref_answer)
    def host(self, op, pi, vcpu=0):
        def c():
            res = getattr(self.c, op)(0, raw=pi, vcpu=vcpu)
            return (res.status, res.level, res.state)
        return _c(c), _r(lambda: getattr(self.r, op)(pi))

    def add(self, pi, data_nonzero=False):
        def c():
            res = self.c.add(0, raw=pi, data_nonzero=data_nonzero)
            return (res.status, res.level, res.state)
        return _c(c), _r(lambda: self.r.add(pi, data_nonzero))

    def track(self):
        return (self.c.track().status, 0, 0), self.r.track()

    def finalize(self):
        f = self.c.finalize()
        return (f.status, 0, 0), self.r.finalize()

    def accept(self, rcx, rax=6, vcpu=0):
        def c():
            x = self.c.accept(rcx=rcx, rax=rax, vcpu=vcpu)
            return dict(rax=x.rax, exited=x.exited, interrupted=x.interrupted,
                        eeq=x.exit_qualification, exit_status=x.exit_status, gpa=x.gpa,
                        chunks_zeroed=x.chunks_zeroed, accept_counter=x.accept_counter)
        return _c(c), _r(lambda: self.r.accept(rcx, vcpu, rax))

    def access(self, gpa, write=False, vcpu=0):
        def c():
            x = self.c.access(gpa, write, vcpu=vcpu)
            return (int(x.outcome), x.vector, x.eeq_type, x.state, x.data_nonzero)
        return _c(c), _r(lambda: self.r.access(gpa, write, vcpu))

    def vmm(self, gpa, eeq, exit_status=0, vcpu=0):
        names = {1: "aug4k", 2: "aug2m", 3: "demote", 4: "release_hp"}

        class R:
            pass
        x = R()
        x.gpa, x.exit_qualification, x.exit_status = gpa, eeq, exit_status
        return (_c(lambda: names[int(self.c.vmm_handle_exit(x, vcpu=vcpu))]),
                _r(lambda: self.r.vmm_handle_exit(gpa, eeq, exit_status, vcpu)))

    def tdvmcall(self, r10, r11, r12, r13, vcpu=0):
        def c():
            x = self.c.tdvmcall(r10, r11, r12, r13, vcpu=vcpu)
            return (x.r10, x.r11, x.chunks)
        return _c(c), _r(lambda: self.r.tdvmcall(r10, r11, r12, r13, vcpu))

    def set_interrupts(self, vcpu, after, period=0):
        self.c.set_interrupts(vcpu, after, period)
        self.r.set_interrupts(vcpu, after, period)

    def set_map_gpa_stalls(self, n):
        self.c.set_map_gpa_stalls(n)
        self.r.map_gpa_stalls = n

    def set_importing(self, on):
        self.c.set_importing(on)
        self.r.importing = on

    def set_lock(self, gpa, level, on=True):
        self.c.set_lock(gpa, level, on)
        self.r.entry(gpa, level)  # raises if there is no such entry
        e = self.r.region(gpa // M2)
        (e.entry if level == 1 else e.children[(gpa % M2) // K4]).locked = on

    def set_hp(self, gpa, level, on=True):
        self.c.set_host_priority(gpa, level, on)
        e = self.r.region(gpa // M2)
        (e.entry if level == 1 else e.children[(gpa % M2) // K4]).hp = on

    def linux(self, start, end, vcpu=0):
        path = self.c.accept_path("linux")
        c = _c(lambda: path(start, end, vcpu) or True)
        stats = ref.RefTdx.new_stats()
        r = _r(lambda: self.r.accept_linux(start, end, vcpu, stats))
        return c, r, path.stats, stats

    def ovmf(self, start, end, vcpu=0):
        path = self.c.accept_path("ovmf")
        c = _c(lambda: path(start, end, vcpu) or True)
        stats = ref.RefTdx.new_stats()
        r = _r(lambda: self.r.accept_ovmf(start, end, vcpu, stats))
        return c, r, path.stats, stats

    # observable state
    def entry(self, gpa, level=None):
        def c():
            e = self.c.entry(gpa, level)
            return (int(e.state), e.level, e.locked, e.host_priority, e.accept_counter)
        return _c(c), _r(lambda: self.r.entry(gpa, level))

    def snapshot(self, start, end):
        """States and non-zero pages of [start, end), from both models."""
        cs = {int(k): v for k, v in self.c.count_states(start, end).items()}
        rs = self.r.count_states(start, end)
        cn = self.c.count_nonzero(start, end)
        rn = sum(1 for p in range(start // K4, end // K4)
                 if p in self.r.nonzero and self._ref_state(p * K4) == ref.MAPPED)
        return (cs, cn), (rs, rn)

    def _ref_state(self, pa):
        reg = self.r.region(pa // M2)
        if reg.children is not None and reg.entry.state in (ref.NL_MAPPED, ref.NL_BLOCKED):
            return reg.children[(pa % M2) // K4].state
        return reg.entry.state

    def check_same(self, start, end, gpas=()):
        c, r = self.snapshot(start, end)
        assert c == r, (c, r)
        for g in gpas:
            for lvl in (None, 1, 0):
                c, r = self.entry(g, lvl)
                assert c == r, (hex(g), lvl, c, r)
