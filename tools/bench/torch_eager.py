"""The PyTorch-eager baseline of the GAN benchmark: one joint-training iteration of the four
CycleGANs and the classifier C, written the way a PyTorch user would write it.

Usage: python torch_eager.py --threads N [--features 1582] [--warmup 3] [--iterations 10]
Prints one JSON line with the median milliseconds per iteration (1 D step + 2 G steps).

Same method as emocycle (docs/method.md): plain MLPs with LeakyReLU 0.2 and dropout after every
hidden layer, sigmoid cross-entropy with real label 0.9, lambda_cyc 5, lambda_cls 2, two Adam
optimisers with the published code's quirk that the D optimiser also holds every G_i. The D
networks' weights are frozen during the G steps, as the reference PyTorch CycleGAN does.
"""

import argparse
import json
import time

import torch
from torch import nn

K = 4
BATCH = 64


def mlp(sizes, dropout):
    layers = []
    for index, (fan_in, fan_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(fan_in, fan_out))
        if index < len(sizes) - 2:
            layers += [nn.LeakyReLU(0.2), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--features", type=int, default=1582)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    d = args.features

    G = nn.ModuleList(mlp([d, 1000, 500, 1000, d], 0.2) for _ in range(K))
    F = nn.ModuleList(mlp([d, 1000, 500, 1000, d], 0.2) for _ in range(K))
    D_T = nn.ModuleList(mlp([d, 1000, 1000, 1], 0.2) for _ in range(K))
    D_S = nn.ModuleList(mlp([d, 1000, 1000, 1], 0.2) for _ in range(K))
    C = mlp([d, 100, 100, K], 0.5)
    for module in (G, F, D_T, D_S, C):
        module.train()

    lr, betas, eps = 2e-4, (0.9, 0.999), 1e-8
    opt_d = torch.optim.Adam(
        [*D_T.parameters(), *D_S.parameters(), *G.parameters()], lr=lr, betas=betas, eps=eps
    )
    opt_g = torch.optim.Adam(
        [*G.parameters(), *F.parameters(), *C.parameters()], lr=lr, betas=betas, eps=eps
    )
    bce = nn.BCEWithLogitsLoss()
    mse = nn.MSELoss()
    ce = nn.CrossEntropyLoss()
    real_label, lambda_cyc, lambda_cls = 0.9, 5.0, 2.0

    s = [torch.rand(BATCH, d) for _ in range(K)]
    t = [torch.rand(BATCH, d) for _ in range(K)]
    labels = torch.arange(K).repeat_interleave(BATCH)

    def adv(logits, target):
        return bce(logits, torch.full_like(logits, target))

    def d_step():
        opt_d.zero_grad()
        loss = 0.0
        for i in range(K):
            fake_t = G[i](s[i])
            fake_s = F[i](t[i]).detach()
            loss = loss + 0.5 * (adv(D_T[i](t[i]), real_label) + adv(D_T[i](fake_t), 0.0))
            loss = loss + 0.5 * (adv(D_S[i](s[i]), real_label) + adv(D_S[i](fake_s), 0.0))
        loss.backward()
        opt_d.step()

    def g_step():
        for p in [*D_T.parameters(), *D_S.parameters()]:
            p.requires_grad_(False)
        opt_g.zero_grad()
        loss = 0.0
        generated = []
        for i in range(K):
            gs = G[i](s[i])
            ft = F[i](t[i])
            cycle = mse(F[i](gs), s[i]) + mse(G[i](ft), t[i])
            loss = loss + adv(D_T[i](gs), real_label) + adv(D_S[i](ft), real_label)
            loss = loss + lambda_cyc * cycle
            generated.append(gs)
        loss = loss + lambda_cls * ce(C(torch.cat(generated)), labels)
        loss.backward()
        opt_g.step()
        for p in [*D_T.parameters(), *D_S.parameters()]:
            p.requires_grad_(True)

    def iteration():
        d_step()
        g_step()
        g_step()

    for _ in range(args.warmup):
        iteration()
    times = []
    for _ in range(args.iterations):
        started = time.perf_counter()
        iteration()
        times.append(time.perf_counter() - started)
    # The median, as emocycle's time_training_iterations reports it.
    times.sort()
    print(
        json.dumps(
            {
                "ms_per_iteration": times[len(times) // 2] * 1e3,
                "threads": torch.get_num_threads(),
                "torch": torch.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
