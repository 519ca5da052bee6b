"""Losses for mask-conditioned partial colorization. All tensors are in model space
(gray, ab in [-1,1], masks {0,1} with 1 = colour); README "Losses" says the same in prose.

Every function casts its inputs to float32 and returns float32 scalars, also under bf16 autocast:
the reductions over whole batches are where low precision hurts. No function calls .item(), so
nothing forces a host-device sync.

What is compared with what:
- the desired generator output is `desired_ab = ab_real * mask`: true colour inside the mask,
  ab = 0 (gray) outside;
- the real pair shown to D is (gray, real_pair_ab, mask): `ab_real * mask` for
  real_target='partial' (what G is asked to produce), or the full `ab_real` for 'full', which
  reproduces the 2018 study's failure: D then rewards colour outside the mask that the
  reconstruction losses forbid;
- the fake pair is (gray, ab_fake, mask).

Generator objective (`generator_loss`), every term a mean so that weights are comparable across
image and mask sizes:

    total = adv_weight * g_adv + l1_weight * g_l1 + mask_weight_in * g_mask_in
            + mask_weight_out * g_mask_out

    g_adv      g_adversarial(kind, D(gray, ab_fake, mask))
    g_l1       mean |ab_fake - desired_ab| over all pixels and both channels
    g_mask_in  region_mean(e, mask),     e = (ab_fake - desired_ab)**2        (mask_loss='l2')
    g_mask_out region_mean(e, 1 - mask)  e = huber_delta(ab_fake - desired_ab) (mask_loss='huber')

region_mean averages over the pixels of its own region only (sum / (region pixels * channels)),
so a mask covering 1 % of the image weighs as much as one covering 90 %; an empty region gives 0.
Huber is torch's: 0.5 e^2 for |e| <= delta, delta * (|e| - 0.5 delta) beyond, i.e. half the
squared L2 for small errors.

Discriminator objective (`discriminator_loss`): total = d_real + d_fake, each a mean over all
logits (per image for the seed D, per patch for PatchGAN):

    kind     d_real                      d_fake                 g_adv
    vanilla  BCE(real_logits, 1 - s)     BCE(fake_logits, 0)    BCE(fake_logits, 1)
    lsgan    mean((real - (1 - s))^2)    mean(fake^2)           mean((fake - 1)^2)
    hinge    mean(relu(1 - real))        mean(relu(1 + fake))   -mean(fake)

s = label_smoothing, one-sided (real targets only). Hinge ignores it: there is no target
probability to soften, and the margin already caps D's confidence (the loss is 0 once a real
logit passes 1), which is what smoothing buys for BCE.
"""
import torch
import torch.nn.functional as F

ADVERSARIAL = ("vanilla", "lsgan", "hinge")
MASK_LOSSES = ("l2", "huber")
REAL_TARGETS = ("partial", "full")


def _check(kind, allowed, what):
    if kind not in allowed:
        raise ValueError(f"unknown {what} {kind!r}; choose one of {', '.join(allowed)}")


def desired_ab(ab_real, mask):
    """(N,2,H,W) ab_real, (N,1,H,W) mask -> (N,2,H,W): colour inside the mask, 0 (gray) outside."""
    return ab_real * mask.to(ab_real.dtype)


def real_pair_ab(ab_real, mask, real_target="partial"):
    """The ab shown to D in the real pair: 'partial' -> ab_real * mask, 'full' -> ab_real."""
    _check(real_target, REAL_TARGETS, "real_target")
    return desired_ab(ab_real, mask) if real_target == "partial" else ab_real


def region_mean(x, mask):
    """Mean of x (N,C,H,W) over the pixels where mask (N,1,H,W) == 1, all channels and the whole
    batch pooled: sum(x * mask) / (sum(mask) * C). float32 scalar; 0 if the region is empty.
    Masks are binary; the denominator is clamped at 1 so an empty region gives 0/1, not 0/0."""
    x, m = x.float(), mask.float()
    return (x * m).sum() / m.expand_as(x).sum().clamp_min(1.0)


def l1(ab_fake, ab_target):
    """Mean |ab_fake - ab_target| over all pixels and channels -> float32 scalar."""
    return (ab_fake.float() - ab_target.float()).abs().mean()


def mask_loss(ab_fake, ab_target, mask, kind="l2", delta=1.0):
    """Per-region reconstruction error -> dict(g_mask_in, g_mask_out), float32 scalars, unweighted.

    ab_fake, ab_target (N,2,H,W), ab_target = desired_ab(ab_real, mask); mask (N,1,H,W) {0,1}.
    kind 'l2': e**2; 'huber': torch Huber with `delta`. Each term is region_mean of the elementwise
    error over its own region (inside: mask, outside: 1 - mask)."""
    _check(kind, MASK_LOSSES, "mask loss")
    a, b = ab_fake.float(), ab_target.float()
    if kind == "l2":
        err = (a - b).square()
    else:
        err = F.huber_loss(a, b, reduction="none", delta=float(delta))
    return dict(g_mask_in=region_mean(err, mask), g_mask_out=region_mean(err, 1.0 - mask.float()))


def d_adversarial(kind, real_logits, fake_logits, smoothing=0.0):
    """Discriminator terms -> dict(d_real, d_fake), float32 scalars (table in module docstring).
    Logits of any shape ((N,1) or (N,1,h,w)); `smoothing` s in [0,1): real target 1 - s."""
    _check(kind, ADVERSARIAL, "adversarial loss")
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"label smoothing must be in [0, 1), got {smoothing}")
    real, fake = real_logits.float(), fake_logits.float()
    if kind == "vanilla":
        return dict(
            d_real=F.binary_cross_entropy_with_logits(real, torch.full_like(real, 1.0 - smoothing)),
            d_fake=F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake)))
    if kind == "lsgan":
        return dict(d_real=(real - (1.0 - smoothing)).square().mean(), d_fake=fake.square().mean())
    return dict(d_real=F.relu(1.0 - real).mean(), d_fake=F.relu(1.0 + fake).mean())


def g_adversarial(kind, fake_logits):
    """Generator adversarial term -> float32 scalar: vanilla BCE(fake, 1), lsgan mean((fake-1)^2),
    hinge -mean(fake)."""
    _check(kind, ADVERSARIAL, "adversarial loss")
    fake = fake_logits.float()
    if kind == "vanilla":
        return F.binary_cross_entropy_with_logits(fake, torch.ones_like(fake))
    if kind == "lsgan":
        return (fake - 1.0).square().mean()
    return -fake.mean()


def generator_loss(loss_cfg, fake_logits, ab_fake, ab_real, mask):
    """Full generator objective -> (total, terms).

    loss_cfg: .adversarial, .adv_weight, .l1_weight, .mask_loss, .mask_weight_in,
    .mask_weight_out, .huber_delta. fake_logits = D(gray, ab_fake, mask), may be None when
    adv_weight == 0 (then g_adv = 0). ab_fake, ab_real (N,2,H,W); mask (N,1,H,W).
    total: float32 scalar with grad, formula in the module docstring; terms with weight 0 are left
    out of it (so a NaN there cannot leak in). terms: dict(g_adv, g_l1, g_mask_in, g_mask_out)
    of detached float32 scalar tensors, unweighted (call .item() when logging)."""
    target = desired_ab(ab_real.float(), mask.float())
    if fake_logits is None:
        if loss_cfg.adv_weight:
            raise ValueError("generator_loss needs fake_logits when adv_weight > 0")
        g_adv = ab_fake.new_zeros((), dtype=torch.float32)
    else:
        g_adv = g_adversarial(loss_cfg.adversarial, fake_logits)
    terms = dict(g_adv=g_adv, g_l1=l1(ab_fake, target))
    terms.update(mask_loss(ab_fake, target, mask, loss_cfg.mask_loss, loss_cfg.huber_delta))
    weights = dict(g_adv=loss_cfg.adv_weight, g_l1=loss_cfg.l1_weight,
                   g_mask_in=loss_cfg.mask_weight_in, g_mask_out=loss_cfg.mask_weight_out)
    total = ab_fake.new_zeros((), dtype=torch.float32)
    for name, w in weights.items():
        if w:
            total = total + float(w) * terms[name]
    return total, {k: v.detach() for k, v in terms.items()}


def discriminator_loss(loss_cfg, real_logits, fake_logits):
    """Full discriminator objective -> (total = d_real + d_fake, dict(d_real, d_fake) detached).
    loss_cfg: .adversarial, .label_smoothing. Logits: D on the real pair
    (gray, real_pair_ab(ab_real, mask, real_target), mask) and on (gray, ab_fake.detach(), mask)."""
    terms = d_adversarial(loss_cfg.adversarial, real_logits, fake_logits,
                          float(loss_cfg.label_smoothing))
    return terms["d_real"] + terms["d_fake"], {k: v.detach() for k, v in terms.items()}
