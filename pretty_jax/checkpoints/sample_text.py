"""A few sentences in several languages and scripts: the parity checker's default
prompts and the training text of the tiny tokenizers built by `pretty_jax.tiny`."""

SENTENCES = (
    "Translate the following sentence into Chinese: The cat sleeps on the warm windowsill.",
    "Traduisez en allemand : Le marché ouvre tôt le samedi matin.",
    "Übersetze ins Französische: Der Zug nach Berlin hat heute Verspätung.",
    "请把下面的句子翻译成英文：今天的天气非常好，我们去公园散步吧。",
    "次の文を英語に翻訳してください：私は毎朝コーヒーを飲みます。",
    "Переведите на английский: Мы встретимся завтра у библиотеки.",
    "Summarize in Spanish: The committee approved the new budget after a long debate.",
    "Tag each word with its part of speech: Ich sehe den großen Hund.",
    "A quick brown fox jumps over the lazy dog, 42 times!\nThen it rests.",
)
