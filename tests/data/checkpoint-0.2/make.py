from handprop.datasets import make_moons

from handprop import MLP, fit

X, y = make_moons(20000, noise=0.2, seed=1)
Xv, yv = make_moons(200, noise=0.2, seed=2)
net = MLP(2, 8, 2, dtype="float64", seed=0)
fit(net, X, y, valid=(Xv, yv), epochs=3, batch_size=1, lr=0.02, momentum=0.9, patience=2,
    seed=3, checkpoint="run", progress=False)
