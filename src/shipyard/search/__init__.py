"""The accuracy-aware search, after the first verification pass: rescuing INT8 candidates that
missed.

rescue.py            keep the layers that cost accuracy in FP32 until the budget holds (mixed
                     precision), after the backend's own attempt (NNCF accuracy control)
debug_precision.py   ``shipyard debug-precision``: quantise once and name the layers where error
appears
"""
