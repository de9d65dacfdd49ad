"""A per-image progress bar in BasicSR's test pipeline unless the option file turns it off.

BasicSR's ``SRModel`` shows a tqdm bar while testing only with ``val.pbar: true``; without
it, ``python -m srcomp_plugin.test`` on Manga109 or Urban100 prints nothing for minutes.
The bar goes to stderr; the test log and its metric lines are unchanged.
"""


def _with_progress(parse_options):
    def parse_options_with_progress(root_path, is_train=False):
        opt, args = parse_options(root_path, is_train=is_train)
        if not is_train:
            val = opt.get('val')
            if val is None:
                val = opt['val'] = {}
            val.setdefault('pbar', True)
        return opt, args

    return parse_options_with_progress


def install():
    """Make ``basicsr.test``'s ``parse_options`` default ``val.pbar`` to true (idempotent)."""
    import basicsr.test as bsr_test

    if getattr(bsr_test.parse_options, '__name__', '') != 'parse_options_with_progress':
        bsr_test.parse_options = _with_progress(bsr_test.parse_options)
