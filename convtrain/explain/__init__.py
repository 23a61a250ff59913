"""`convtrain explain`: where a trained network looks and what each of its layers responds to.

Grad-CAM (Selvaraju et al. 2017) on the class score before the softmax, feature maps of every
convolution and block, the theoretical receptive field of a unit (inspect's arithmetic) beside
its effective one (Luo et al. 2016: the gradient of the unit with respect to the input), and the
filters with their change from initialisation. Libraries only: nothing here prints.
"""
