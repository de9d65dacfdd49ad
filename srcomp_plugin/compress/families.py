"""The teacher architectures stage 2 can compress, and what "depth" and "width" mean for each.

Two families are supported, each mapped to the compact preset that the release trained:

* EDSR (BasicSR ``EDSR`` or our ``EDSRmini``) -> ``EDSRmini``. Residual units: the
  ``num_block`` residual blocks (one level, no stages). Width: ``num_feat``, a multiple
  of 4. The student keeps ``EDSRmini``'s own ``res_scale`` (2, the release's value).
* SwinIR (BasicSR ``SwinIR`` or our ``SwinIRmini``) -> ``SwinIRmini``. Residual units:
  stages (RSTBs, ``len(depths)``) x transformer layers per stage (``depths[i]``), two
  levels. Width: ``embed_dim``, a multiple of the number of heads (heads are kept).

Every constructor argument of the teacher is resolved to its effective value (the YAML's
value, else the class default) and written explicitly into the student's options, because
the presets' defaults differ from BasicSR's (SwinIR's window 7 / mlp_ratio 4 / no
upsampler against SwinIRmini's 8 / 2 / ``pixelshuffledirect``): a student must inherit
what the teacher really ran with, not what the preset would assume.
"""
import inspect
import math

from .errors import CompressError

SUPPORTED_TEACHERS = {'EDSR': 'EDSRmini', 'EDSRmini': 'EDSRmini', 'SwinIR': 'SwinIRmini', 'SwinIRmini': 'SwinIRmini'}
_PLAIN = (bool, int, float, str, type(None))


def round_half_up(x):
    """Round to the nearest integer, halves up (Python's ``round`` rounds halves to even)."""
    return int(math.floor(x + 0.5))


def _plain(value):
    """``value`` as YAML-friendly data (tuples -> lists), or ``None`` when it is not plain data."""
    if isinstance(value, (tuple, list)):
        items = [_plain(v) for v in value]
        return None if any(i is None and v is not None for i, v in zip(items, value)) else items
    return value if isinstance(value, _PLAIN) else None


def arch_class(arch_type):
    """The registered class of ``arch_type`` (the plugin's registry filled)."""
    import srcomp_plugin  # noqa: F401  (registers EDSRmini / SwinIRmini)
    from basicsr.utils.registry import ARCH_REGISTRY

    return ARCH_REGISTRY.get(arch_type)


def resolved_kwargs(network_opt, where='network_g'):
    """Every constructor kwarg of ``network_opt['type']``: the option's value, else the default.

    Defaults are collected along the class hierarchy, so a preset's ``**kwargs`` that reach
    its base class (``SwinIRmini`` -> ``SwinIR``: ``qkv_bias``, ``patch_size``, ...) are
    resolved too. Defaults that are not plain data (``norm_layer=nn.LayerNorm``) are left
    out unless the option sets them. Tuples become lists.
    """
    cls = arch_class(network_opt['type'])
    classes = [k for k in cls.__mro__ if '__init__' in vars(k) and not k.__module__.startswith('torch')]
    order, defaults = [], {}
    for klass in classes:  # most derived first: its signature sets the order of the keys
        for name, param in inspect.signature(klass.__init__).parameters.items():
            if name == 'self' or param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            if name not in order:
                order.append(name)
            if name not in defaults and param.default is not param.empty:
                value = _plain(param.default)
                if value is not None or param.default is None:
                    defaults[name] = value
    given = {k: (list(v) if isinstance(v, tuple) else v) for k, v in network_opt.items() if k != 'type'}
    resolved = {name: given.get(name, defaults.get(name)) for name in order if name in given or name in defaults}
    resolved.update({k: v for k, v in given.items() if k not in resolved})
    return resolved


class EDSRFamily:
    """EDSR: ``num_block`` residual blocks of width ``num_feat``."""
    name = 'EDSR'
    student_type = 'EDSRmini'
    width_key = 'num_feat'

    @staticmethod
    def check(kwargs, where):
        for key in ('num_in_ch', 'num_out_ch', 'num_feat', 'num_block', 'upscale'):
            if not isinstance(kwargs.get(key), int) or kwargs[key] < 1:
                raise CompressError(f'{where}.{key} must be a positive integer for an EDSR teacher, '
                                    f'got {kwargs.get(key)!r}')

    @staticmethod
    def depth_plan(kwargs, depth_keep):
        """All blocks form one level: keep ``depth_keep`` of them (rounded, at least 1)."""
        return {'num_block': max(1, round_half_up(kwargs['num_block'] * depth_keep))}

    @staticmethod
    def min_depth(kwargs):
        return {'num_block': 1}

    @staticmethod
    def widths(kwargs):
        """Multiples of 4 up to the teacher's width (the student is never wider)."""
        return list(range(4, kwargs['num_feat'] + 1, 4))

    @staticmethod
    def student_kwargs(teacher_kwargs, depth, width):
        student_defaults = resolved_kwargs({'type': 'EDSRmini'})
        kwargs = dict(teacher_kwargs, **depth)
        kwargs['num_feat'] = width
        kwargs['res_scale'] = student_defaults['res_scale']  # the release's EDSRmini keeps res_scale 2
        return kwargs

    @staticmethod
    def shape(kwargs):
        return {'num_feat': kwargs['num_feat'], 'num_block': kwargs['num_block'], 'res_scale': kwargs['res_scale']}


class SwinIRFamily:
    """SwinIR: ``len(depths)`` stages of ``depths[i]`` transformer layers, width ``embed_dim``."""
    name = 'SwinIR'
    student_type = 'SwinIRmini'
    width_key = 'embed_dim'

    @staticmethod
    def check(kwargs, where):
        depths, heads = kwargs.get('depths'), kwargs.get('num_heads')
        if not depths or not all(isinstance(d, int) and d > 0 for d in depths):
            raise CompressError(f'{where}.depths must be a non-empty list of positive integers, got {depths!r}')
        if not heads or len(heads) != len(depths):
            raise CompressError(f'{where}.num_heads must have one entry per stage ({len(depths)}), got {heads!r}')
        if len(set(heads)) != 1:
            raise CompressError(f'{where}.num_heads {heads}: only teachers with the same number of heads in every '
                                'stage are supported (the student keeps the heads)')
        if not isinstance(kwargs.get('embed_dim'), int) or kwargs['embed_dim'] % heads[0]:
            raise CompressError(f'{where}.embed_dim must be a multiple of num_heads ({heads[0]}), '
                                f'got {kwargs.get("embed_dim")!r}')
        if kwargs.get('resi_connection', '1conv') not in ('1conv', '3conv'):
            raise CompressError(f'{where}.resi_connection must be 1conv or 3conv, got {kwargs["resi_connection"]!r}')

    @staticmethod
    def depth_plan(kwargs, depth_keep):
        """Stages and layers per stage each scaled by sqrt(depth_keep), rounded, at least 1.

        With different layer counts per stage the mean is scaled (every student stage has
        the same number of layers).
        """
        depths = kwargs['depths']
        factor = math.sqrt(depth_keep)
        stages = max(1, round_half_up(len(depths) * factor))
        layers = max(1, round_half_up(sum(depths) / len(depths) * factor))
        return {'depths': [layers] * stages, 'num_heads': [kwargs['num_heads'][0]] * stages}

    @staticmethod
    def min_depth(kwargs):
        return {'depths': [1], 'num_heads': [kwargs['num_heads'][0]]}

    @staticmethod
    def widths(kwargs):
        """Multiples of the head count up to the teacher's embed_dim (3conv also needs dim // 4 >= 1)."""
        step = kwargs['num_heads'][0]
        widths = range(step, kwargs['embed_dim'] + 1, step)
        if kwargs.get('resi_connection') == '3conv':
            widths = [w for w in widths if w >= 4]
        return list(widths)

    @staticmethod
    def student_kwargs(teacher_kwargs, depth, width):
        return dict(teacher_kwargs, embed_dim=width, **depth)

    @staticmethod
    def shape(kwargs):
        return {'embed_dim': kwargs['embed_dim'], 'depths': list(kwargs['depths']),
                'num_heads': list(kwargs['num_heads'])}


FAMILIES = {'EDSR': EDSRFamily, 'SwinIR': SwinIRFamily}


def teacher_family(network_opt, where='network_g'):
    """``(family, resolved teacher kwargs)`` of a ``network_g`` dict; CompressError if unsupported."""
    if not isinstance(network_opt, dict) or 'type' not in network_opt:
        raise CompressError(f'{where} must be a mapping with a "type" key, got {network_opt!r}')
    arch = network_opt['type']
    if arch not in SUPPORTED_TEACHERS:
        supported = ', '.join(f'{t} -> {s}' for t, s in SUPPORTED_TEACHERS.items())
        raise CompressError(f'{where}.type: cannot compress arch {arch!r}; supported teacher types (-> student): '
                            f'{supported}')
    family = FAMILIES['EDSR' if SUPPORTED_TEACHERS[arch] == 'EDSRmini' else 'SwinIR']
    kwargs = resolved_kwargs(network_opt, where)
    family.check(kwargs, where)
    return family, kwargs
