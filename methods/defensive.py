"""Reference row: defensive distillation (Papernot, McDaniel, Wu, Jha & Swami, S&P 2016).

The distilled network is trained at temperature T = 100 on the soft labels of an initial network
trained at the same temperature, then deployed at T = 1. Its logits grow about T times larger, the
softmax saturates at T = 1, and gradient-based attacks see vanishing gradients: robustness that is
gradient masking, not real (Carlini & Wagner 2016). It is in the table so that the evaluation's
sanity checks are seen to flag it.

Papernot et al. distil into the same architecture as the initial network; the protocol fixes a
smaller student, so this is defensive distillation into the protocol's student, from the
protocol's teacher. An initial network trained at T whose softmax(Z / T) equals the protocol
teacher's softmax(z_t) is exactly a network with logits Z = T * z_t, so its soft labels at T are
softmax(z_t): we use the cached teacher instead of training a second network.

loss = -T * sum_k softmax(z_t)_k * log softmax(z_S / T)_k, averaged over the batch.

The factor T undoes the 1/T that the temperature puts on the gradient with respect to the logits;
without it the student barely moves within the protocol's epoch budget (Papernot et al. trained
for 50 epochs). It is not a mere step-size change: the protocol's optimiser applies weight decay
(its recipe's `weight_decay`, coupled SGD) to the parameters, and multiplying the data term by T changes the balance between the two,
as if the weight decay were T times weaker; the minimiser of T * L + wd * ||w||^2 / 2 is that of
L + (wd / T) * ||w||^2 / 2, not that of L + wd * ||w||^2 / 2.
"""

import torch.nn.functional as F

from methods.api import HParams, Method, Step, register_method


@register_method
class Defensive(Method):
    name = "defensive"
    description = "Papernot et al. 2016: distillation at T=100, deployed at T=1 (masks gradients)"
    family = "reference"

    class Hparams(HParams):
        T: float = 100.0  # training temperature; evaluation is at T = 1

    def loss(self, step: Step):
        soft_labels = F.softmax(step.teacher.logits, 1)
        log_p = F.log_softmax(step.student().logits / self.hp.T, 1)
        return -self.hp.T * (soft_labels * log_p).sum(1).mean()
