"""A mixture-density network on photometry, trained on a simulated catalog of the survey.

The network reads each object's S/N-scaled fluxes and errors (per band ``asinh(f / 2e)`` and
``log10 e``: together they hold the fluxes, the colours at every S/N and the depth) and gives
p(ln(1 + z)) as a mixture of ``components`` Gaussians. It is trained on
:mod:`rail.deepdisc.hybrid.simulated_photometry`'s catalog (true fluxes of the survey's
population, the field's own errors, new noise every epoch) by maximum likelihood of the true
redshifts, so it learns the colour-redshift relation of the simulation's SED libraries at
the field's noise: the photometric counterpart of the image network's pre-training, with a
hundred times more labelled galaxies than images can give. The model file is a state dict
and a JSON description (bands, feature scaling, training record), loadable with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rail.deepdisc.errors import InputError, ModelFileError
from rail.deepdisc.hybrid.options import PhotometryNetOptions

log = logging.getLogger(__name__)

FORMAT = "deepdisc-photometry-network"
VERSION = 1


def photometry_features(flux: np.ndarray, err: np.ndarray) -> np.ndarray:
    """(N, 3 NB) features: ``asinh(f / 2e)``, ``log10 e`` and a no-data flag per band (a
    band without a positive, finite error has 0, 0, 1)."""
    flux = np.asarray(flux, float)
    err = np.asarray(err, float)
    ok = np.isfinite(flux) & np.isfinite(err) & (err > 0)
    e = np.where(ok, err, 1.0)
    snr = np.where(ok, np.arcsinh(np.where(ok, flux, 0.0) / (2.0 * e)), 0.0)
    return np.concatenate([snr, np.where(ok, np.log10(e), 0.0), (~ok).astype(float)],
                          axis=1).astype(np.float32)


def _module(n_in: int, hidden: int, layers: int, components: int):
    import torch

    body: list[Any] = []
    width = n_in
    for _ in range(layers):
        body += [torch.nn.Linear(width, hidden), torch.nn.SiLU()]
        width = hidden
    body.append(torch.nn.Linear(width, 3 * components))
    return torch.nn.Sequential(*body)


def _mixture(out, components: int):
    """log weights, means and widths (in ln(1 + z)) of the network's raw output."""
    import torch

    logw = torch.log_softmax(out[:, :components], dim=1)
    mean = out[:, components:2 * components]
    width = torch.nn.functional.softplus(out[:, 2 * components:]) + 1e-3
    return logw, mean, width


def _log_likelihood(out, u, components: int):
    import torch

    logw, mean, width = _mixture(out, components)
    lp = logw - 0.5 * ((u[:, None] - mean) / width) ** 2 - torch.log(width) \
        - 0.5 * np.log(2 * np.pi)
    return torch.logsumexp(lp, dim=1)


@dataclass
class PhotometryNetwork:
    """A trained network with what it needs to read photometry.

    Attributes
    ----------
    state
        The torch ``state_dict``.
    meta
        JSON-able: ``bands``, ``hidden``, ``layers``, ``components``, feature ``center`` and
        ``scale``, the training record.
    """

    state: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def bands(self) -> list[str]:
        return list(self.meta["bands"])

    def module(self):
        m = _module(3 * len(self.bands), int(self.meta["hidden"]), int(self.meta["layers"]),
                    int(self.meta["components"]))
        m.load_state_dict(self.state)
        return m.eval()

    def mixtures(self, flux: np.ndarray, err: np.ndarray, chunk: int = 65536
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(N, K) log weights, means and widths in ln(1 + z) of each object's p."""
        import torch

        x = (photometry_features(flux, err) - np.asarray(self.meta["center"], np.float32)) \
            / np.asarray(self.meta["scale"], np.float32)
        net = self.module()
        k = int(self.meta["components"])
        parts = []
        with torch.no_grad():
            for s in range(0, x.shape[0], chunk):
                out = net(torch.from_numpy(x[s:s + chunk]))
                parts.append([t.numpy().astype(float) for t in _mixture(out, k)])
        if not parts:
            empty = np.zeros((0, k))
            return empty, empty, empty
        return tuple(np.concatenate([p[i] for p in parts]) for i in range(3))

    def log_pdf(self, flux: np.ndarray, err: np.ndarray, grid: np.ndarray) -> np.ndarray:
        """(N, NZ) log p(z) on the redshift grid (p(z) = p(u) / (1 + z), u = ln(1 + z))."""
        logw, mean, width = self.mixtures(flux, err)
        u = np.log1p(np.asarray(grid, float))
        out = np.empty((logw.shape[0], u.size))
        for s in range(0, logw.shape[0], 4096):
            sl = slice(s, s + 4096)
            lp = logw[sl, :, None] - 0.5 * ((u[None, None, :] - mean[sl, :, None])
                                           / width[sl, :, None]) ** 2 \
                - np.log(width[sl, :, None]) - 0.5 * np.log(2 * np.pi)
            m = lp.max(axis=1)
            out[sl] = m + np.log(np.exp(lp - m[:, None, :]).sum(axis=1)) - u[None, :]
        return out

    def save(self, path: str | os.PathLike) -> str:
        """Write the model atomically (a dict of tensors and a JSON string)."""
        import torch

        from rail.deepdisc.store.atomic import atomic_output

        with atomic_output(path, "photometry network") as tmp:
            torch.save({"format": FORMAT, "version": VERSION, "state_dict": self.state,
                        "meta": json.dumps(self.meta, sort_keys=True)}, tmp)
        return os.fspath(path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PhotometryNetwork:
        """Read a model written by :meth:`save` (``weights_only``: no pickled objects).

        Raises
        ------
        ModelFileError
            If the file is not such a model.
        """
        import torch

        try:
            data = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
        except Exception as err:  # torch raises many kinds for unreadable files
            raise ModelFileError(f"cannot read photometry network {path}: {err}") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ModelFileError(f"{path} is not a photometry network ({FORMAT})")
        return cls(state=data["state_dict"], meta=json.loads(data["meta"]))


def train_network(flux: np.ndarray, redshift: np.ndarray, noise: Any, bands: Sequence[str],
                  settings: PhotometryNetOptions, seed: int = 0, *, progress: bool = False,
                  meta: dict[str, Any] | None = None) -> PhotometryNetwork:
    """Train on true fluxes with new noise from ``noise`` (a
    :class:`~rail.deepdisc.hybrid.simulated_photometry.NoiseModel`) every epoch, as
    ``settings`` say (the ``photnet_*`` options).

    Raises
    ------
    InputError
        If there are fewer than 1,000 galaxies to learn from.
    """
    import torch
    from tqdm.auto import tqdm

    flux = np.asarray(flux, float)
    u = np.log1p(np.asarray(redshift, float)).astype(np.float32)
    if flux.shape[0] < 1000:
        raise InputError(f"the photometry network needs at least 1,000 simulated galaxies, "
                         f"got {flux.shape[0]}")
    rng = np.random.default_rng([seed, 61])
    torch.manual_seed(seed)

    def noisy() -> np.ndarray:
        err = noise.draw(flux, rng)
        return photometry_features(flux + err * rng.standard_normal(flux.shape), err)

    first = noisy()
    center = first.mean(axis=0)
    scale = np.where(first.std(axis=0) > 0, first.std(axis=0), 1.0)
    net = _module(first.shape[1], settings.photnet_hidden, settings.photnet_layers,
                  settings.photnet_components)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.photnet_learning_rate, weight_decay=1e-5)
    steps = settings.photnet_epochs * -(-flux.shape[0] // settings.photnet_batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, settings.photnet_learning_rate,
                                                total_steps=steps)
    target = torch.from_numpy(u)
    history = []
    bar = tqdm(range(settings.photnet_epochs), desc="photometry network", unit="epoch",
               disable=not progress)
    for epoch in bar:
        x = torch.from_numpy((first if epoch == 0 else noisy()) - center) / \
            torch.from_numpy(scale.astype(np.float32))
        perm = torch.from_numpy(rng.permutation(flux.shape[0]))
        total = 0.0
        net.train()
        for s in range(0, flux.shape[0], settings.photnet_batch_size):
            idx = perm[s:s + settings.photnet_batch_size]
            loss = -_log_likelihood(net(x[idx]), target[idx], settings.photnet_components).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * idx.numel()
        history.append(total / flux.shape[0])
        bar.set_postfix(loss=f"{history[-1]:.3f}")
        log.info("photometry network epoch %d/%d: loss %.4f", epoch + 1, settings.photnet_epochs,
                 history[-1])
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    return PhotometryNetwork(state=state, meta={
        "bands": list(bands), "hidden": settings.photnet_hidden, "layers": settings.photnet_layers,
        "components": settings.photnet_components, "center": center.tolist(),
        "scale": scale.tolist(), "training": {**settings.as_dict(), "seed": seed,
                                              "history": history,
                                              "n_galaxies": int(flux.shape[0])},
        **(meta or {})})


def fine_tune(network: PhotometryNetwork, flux: np.ndarray, err: np.ndarray,
              redshift: np.ndarray, *, epochs: int = 20, learning_rate: float = 3e-4,
              batch_size: int = 64, seed: int = 0, anchor: Any = None) -> PhotometryNetwork:
    """A copy of the network trained further on labelled objects of the field.

    Parameters
    ----------
    network
        The network trained on the simulation.
    flux, err, redshift
        The labelled objects' measured photometry and redshifts (NaN redshifts are left
        out).
    epochs, learning_rate, batch_size
        Passes over the labelled objects, their peak learning rate and batch size.
    anchor
        ``(flux, redshift, noise)`` of the simulated catalog: each step also fits a batch of
        it (new noise), so the network keeps what the simulation taught it where the labels
        are few (fainter, rarer galaxies).
    """
    import torch

    z = np.asarray(redshift, float)
    use = np.isfinite(z)
    if use.sum() == 0 or epochs == 0:
        return network
    k = int(network.meta["components"])
    center = np.asarray(network.meta["center"], np.float32)
    scale = np.asarray(network.meta["scale"], np.float32)
    x = torch.from_numpy((photometry_features(flux[use], err[use]) - center) / scale)
    u = torch.from_numpy(np.log1p(z[use]).astype(np.float32))
    net = network.module().train()
    rng = np.random.default_rng([seed, 67])
    torch.manual_seed(seed)
    opt = torch.optim.AdamW(net.parameters(), lr=learning_rate, weight_decay=1e-5)
    n_steps = epochs * -(-x.shape[0] // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, learning_rate, total_steps=n_steps)
    for _ in range(epochs):
        perm = torch.from_numpy(rng.permutation(x.shape[0]))
        for s in range(0, x.shape[0], batch_size):
            idx = perm[s:s + batch_size]
            loss = -_log_likelihood(net(x[idx]), u[idx], k).mean()
            if anchor is not None:
                sim_flux, sim_z, noise = anchor
                pick = rng.integers(0, sim_flux.shape[0], idx.numel())
                e = noise.draw(sim_flux[pick], rng)
                xs = (photometry_features(sim_flux[pick] + e * rng.standard_normal(e.shape), e)
                      - center) / scale
                us = torch.from_numpy(np.log1p(sim_z[pick]).astype(np.float32))
                loss = loss - _log_likelihood(net(torch.from_numpy(xs)), us, k).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    state = {k_: v.detach().clone() for k_, v in net.state_dict().items()}
    meta = {**network.meta, "fine_tuning": {"epochs": epochs, "learning_rate": learning_rate,
                                            "n_labels": int(use.sum()), "seed": seed}}
    return PhotometryNetwork(state=state, meta=meta)
