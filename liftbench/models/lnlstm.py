"""The layer-normalised LSTM cell of Hossain & Little (ECCV 2018), i.e. TF 1.x
``tf.contrib.rnn.LayerNormBasicLSTMCell`` (see ``reference_implementations.md`` §1.2).

One step, with TF's gate order **i, j, f, o** (j = candidate; PyTorch's ``nn.LSTM`` orders its
gates i, f, g, o, so reorder the column blocks of ``weight`` when porting TF checkpoints)::

    [i, j, f, o] = [x, h_prev] @ W                   W: (in + H, 4H), Glorot-uniform, no bias with LN
    i, j, f, o   = LN_i(i), LN_j(j), LN_f(f), LN_o(o)  four SEPARATE layer norms (gain 1, shift 0)
    g            = tanh(j) * recurrent_dropout_mask  (Semeniuta et al. 2016: dropout on the candidate)
    c            = LN_c(c_prev * sigmoid(f + 1.0) + sigmoid(i) * g)   forget bias +1 is a constant
    h            = tanh(c) * sigmoid(o)              the NORMALISED c is carried to the next step

With ``layer_norm=False`` there are no layer norms at all and ``W`` gets a bias (4H,), as in TF.

``reference_step`` is plain and obviously correct, one layer-norm call per gate: the numerical
reference of every fast path. The speed path (``liftbench.fast.seq2seq``: grouped point-wise step,
in-place inference step, fused stacked training) runs the same maths and is tested against it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

State = tuple[torch.Tensor, torch.Tensor]  # (c, h), each (B, H)

# TF gate order: column block k of the gate pre-activations is GATES[k].
GATES = ("i", "j", "f", "o")
_I, _J, _F, _O = range(4)


class LNLSTMCell(nn.Module):
    """``LayerNormBasicLSTMCell(hidden_size)`` of TF 1.x contrib, for inputs of size ``input_size``.

    Parameters (TF name in brackets):
      ``weight`` (in + H, 4H) [kernel], laid out like TF so ``[x, h] @ weight`` gives [i, j, f, o];
      ``gate_ln_weight`` / ``gate_ln_bias`` (4, H) [input|transform|forget|output /gamma|beta];
      ``state_ln_weight`` / ``state_ln_bias`` (H,) [state/gamma|beta]; or, with ``layer_norm=False``,
      only ``bias`` (4H,).
    """

    def __init__(self, input_size: int, hidden_size: int, layer_norm: bool = True, eps: float = 1e-12,
                 forget_bias: float = 1.0):
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.layer_norm = layer_norm
        self.eps = eps  # TF 1.x contrib layer_norm's hard-coded variance epsilon
        self.forget_bias = forget_bias  # a constant inside the sigmoid, not a variable
        H = hidden_size
        self.weight = nn.Parameter(torch.empty(input_size + H, 4 * H))
        if layer_norm:
            self.gate_ln_weight = nn.Parameter(torch.ones(4, H))
            self.gate_ln_bias = nn.Parameter(torch.zeros(4, H))
            self.state_ln_weight = nn.Parameter(torch.ones(H))
            self.state_ln_bias = nn.Parameter(torch.zeros(H))
            self.register_parameter("bias", None)  # TF's _linear adds no bias when layer_norm=True
        else:
            self.bias = nn.Parameter(torch.zeros(4 * H))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """TF 1.x defaults: Glorot-uniform over the WHOLE (in+H, 4H) kernel, LN gain 1 / shift 0.

        The no-LN bias starts at zero (TF's would get the default Glorot initialiser of a 1-D
        variable; we keep zero, the conventional LSTM bias init)."""
        fan_in, fan_out = self.weight.shape
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        with torch.no_grad():
            self.weight.uniform_(-bound, bound)
            if self.layer_norm:
                self.gate_ln_weight.fill_(1.0)
                self.gate_ln_bias.zero_()
                self.state_ln_weight.fill_(1.0)
                self.state_ln_bias.zero_()
            else:
                self.bias.zero_()

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, layer_norm={self.layer_norm}, eps={self.eps:g}"

    def zero_state(self, batch: int, like: torch.Tensor) -> State:
        z = like.new_zeros(batch, self.hidden_size)  # (B, H)
        return z, z

    # ------------------------------------------------------------------ plain reference
    def _gate_norm(self, x: torch.Tensor, k: int) -> torch.Tensor:
        H = self.hidden_size
        return F.layer_norm(x, (H,), self.gate_ln_weight[k], self.gate_ln_bias[k], self.eps)

    def reference_step(self, x: torch.Tensor, state: State, g_mask: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, State]:
        """One step, written like TF's ``call``: x (B, in), state (c, h) -> (h, (c, h))."""
        c_prev, h_prev = state
        gates = torch.cat([x, h_prev], dim=1) @ self.weight  # (B, in+H) @ (in+H, 4H) -> (B, 4H)
        if self.bias is not None:
            gates = gates + self.bias
        i, j, f, o = gates.chunk(4, dim=1)  # 4 x (B, H), TF order i, j, f, o
        if self.layer_norm:
            i = self._gate_norm(i, _I)
            j = self._gate_norm(j, _J)
            f = self._gate_norm(f, _F)
            o = self._gate_norm(o, _O)
        g = torch.tanh(j)
        if g_mask is not None:  # recurrent dropout on the candidate, mask already scaled by 1/keep
            g = g * g_mask
        c = c_prev * torch.sigmoid(f + self.forget_bias) + torch.sigmoid(i) * g
        if self.layer_norm:
            c = F.layer_norm(c, (self.hidden_size,), self.state_ln_weight, self.state_ln_bias, self.eps)
        h = torch.tanh(c) * torch.sigmoid(o)
        return h, (c, h)
