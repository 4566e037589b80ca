"""Real speech without downloads: eSpeak NG utterances (:func:`build_speech`) and users' WAV folders
(:func:`load_wav_folder`), both as :class:`~contrastkit.data.containers.DatasetSplits` of 16 kHz sequences.

Modules: :mod:`.espeak` (the ctypes binding), :mod:`.fresh` (synthesis in a child process),
:mod:`.sentences`, :mod:`.speakers`, :mod:`.phones` (phone inventory and frame labels), :mod:`.channel`
(recording degradations), :mod:`.cache`, :mod:`.build` and :mod:`.wavfolder`.
"""

from contrastkit.data.speech.build import build_speech
from contrastkit.data.speech.wavfolder import load_wav_folder

__all__ = ["build_speech", "load_wav_folder"]
