"""ControlNets that do no work at a step where their scale is 0."""

from diffusers import MultiControlNetModel


class IdleSkippingControlNets(MultiControlNetModel):
    """diffusers' pipelines call every ControlNet at every step, at scale 0 outside its
    start-end range, then add its (zero) residuals to the UNet's. Here a ControlNet at scale 0
    is not run, and when none runs the UNet gets no residuals: exactly what adding zeros gives.
    The sum keeps diffusers' order, so the pixels are the same."""

    def forward(self, sample, timestep, encoder_hidden_states, controlnet_cond, conditioning_scale, class_labels=None,
                timestep_cond=None, attention_mask=None, added_cond_kwargs=None, cross_attention_kwargs=None,
                guess_mode=False, return_dict=True):
        down, mid = None, None
        for image, scale, controlnet in zip(controlnet_cond, conditioning_scale, self.nets):
            if scale == 0 and not guess_mode:
                continue
            d, m = controlnet(sample=sample, timestep=timestep, encoder_hidden_states=encoder_hidden_states,
                              controlnet_cond=image, conditioning_scale=scale, class_labels=class_labels,
                              timestep_cond=timestep_cond, attention_mask=attention_mask,
                              added_cond_kwargs=added_cond_kwargs, cross_attention_kwargs=cross_attention_kwargs,
                              guess_mode=guess_mode, return_dict=False)
            if down is None:
                down, mid = d, m
            else:
                down = [a + b for a, b in zip(down, d)]
                mid += m
        return down, mid
