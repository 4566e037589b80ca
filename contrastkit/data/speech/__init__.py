"""Real speech without downloads: eSpeak NG utterances (:func:`build_speech`), paired with their sentences
(:func:`build_speech_text`) or digit words spoken alone (:func:`build_spoken_digits`), and users' WAV folders
(:func:`load_wav_folder`), all as :class:`~contrastkit.data.containers.DatasetSplits` of 16 kHz sequences.

Modules: :mod:`.espeak` (the ctypes binding), :mod:`.fresh` (synthesis in a child process),
:mod:`.sentences`, :mod:`.speakers`, :mod:`.phones` (phone inventory and frame labels), :mod:`.channel`
(recording degradations), :mod:`.cache`, :mod:`.build` and :mod:`.wavfolder`; for the paired sets
:mod:`.captions` (short sentences with digit words), :mod:`.clips` (chunked synthesis into fixed-length clips)
and :mod:`.pairs`.
"""

from contrastkit.data.speech.build import build_speech
from contrastkit.data.speech.pairs import build_speech_text, build_spoken_digits
from contrastkit.data.speech.wavfolder import load_wav_folder

__all__ = ["build_speech", "build_speech_text", "build_spoken_digits", "load_wav_folder"]
