"""The tensor names and shapes of one ShuffleNetV2 choice block in the authors' PyTorch layout
(megvii-model/SinglePathOneShot and ShuffleNet-Series ``OneShot/``), written from their published
state_dict layout for the import tests' fixtures (no code of theirs)."""


def add_block(conv, bn, m, choice, inp, outputs, mid, proj):
    """Adds block ``m``'s tensors through ``conv(name, out, in, k, groups=1)`` and
    ``bn(name, channels)``: choice 0-2 a ShuffleNet unit of kernel 3/5/7, 3 the Xception unit;
    ``proj``: the stride-2 projection branch."""
    k = 3 + 2 * choice if choice < 3 else 3
    if choice < 3:
        conv(m + "branch_main.0", mid, inp, 1)
        bn(m + "branch_main.1", mid)
        conv(m + "branch_main.3", mid, mid, k, groups=mid)
        bn(m + "branch_main.4", mid)
        conv(m + "branch_main.5", outputs, mid, 1)
        bn(m + "branch_main.6", outputs)
    else:
        conv(m + "branch_main.0", inp, inp, 3, groups=inp)
        bn(m + "branch_main.1", inp)
        conv(m + "branch_main.2", mid, inp, 1)
        bn(m + "branch_main.3", mid)
        conv(m + "branch_main.5", mid, mid, 3, groups=mid)
        bn(m + "branch_main.6", mid)
        conv(m + "branch_main.7", mid, mid, 1)
        bn(m + "branch_main.8", mid)
        conv(m + "branch_main.10", mid, mid, 3, groups=mid)
        bn(m + "branch_main.11", mid)
        conv(m + "branch_main.12", outputs, mid, 1)
        bn(m + "branch_main.13", outputs)
    if proj:
        conv(m + "branch_proj.0", inp, inp, k, groups=inp)
        bn(m + "branch_proj.1", inp)
        conv(m + "branch_proj.2", inp, inp, 1)
        bn(m + "branch_proj.3", inp)
