from hypothesis import Phase, settings

from unaccepted.testing.stateful import AcceptanceMachine

TestTableAgainstReference = AcceptanceMachine.TestCase
TestTableAgainstReference.settings = settings(max_examples=60, stateful_step_count=30,
                                              deadline=None)


class _Broken(AcceptanceMachine):
    """An implementation without the guard unit must be caught."""

    def make_implementation(self, unit_size, phys_base, size):
        impl = super().make_implementation(unit_size, phys_base, size)
        real_accept = impl.accept

        def accept(start, size):
            end = start + size
            if end % unit_size == 0 and size >= 4096:
                return real_accept(start, size - 4096)   # drops the guard unit
            return real_accept(start, size)

        impl.accept = accept
        return impl


def test_the_machine_catches_a_missing_guard_unit():
    from hypothesis.stateful import run_state_machine_as_test

    # generate only: the test needs to know the machine fails, not the
    # smallest failing run, and shrinking took minutes
    try:
        run_state_machine_as_test(_Broken, settings=settings(
            max_examples=200, deadline=None, database=None,
            phases=[Phase.explicit, Phase.generate]))
    except AssertionError:
        return
    raise AssertionError("the state machine did not notice a missing guard unit")
