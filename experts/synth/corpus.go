package synth

// synthCorpus is the English text the synthetic tokenizer learns its merges
// from (written for this package), so that ordinary English tokenizes into
// multi-byte tokens.
const synthCorpus = `The town of Millbrook sits where the river bends twice before it reaches the sea. In the morning the fog comes up from the water and hides the bridge, the market and the old stone church, and for an hour or two the whole place seems to float. People who were born there say they do not notice it any more, but they still stop on the bridge to look at the light when the fog begins to lift.

There is a library on the hill above the market. It was built more than a hundred years ago by a family that made its money in the mills, and it still has their name carved over the door. Inside, the rooms are quiet and cool even in the summer. The reading room has tall windows that face the river, long wooden tables and green lamps, and shelves that reach up to the ceiling. A ladder on rails runs along the wall so that the librarian can reach the books at the top.

The librarian is a woman named Clara who has worked there for almost thirty years. She knows where every book is, and she knows most of the people who come in to read them. She remembers what they asked for the last time and what they did not like. When children come in after school she lets them sit on the floor in the corner with the picture books, and when they are too loud she does not tell them to be quiet; she only looks at them over her glasses until they start to laugh.

On Saturdays the market fills the square. Farmers bring vegetables, eggs, cheese and honey from the villages in the valley, and there is a man who sells bread from the back of a blue van. By nine o'clock there is a line of people waiting for his bread, and by eleven it is all gone. He has been asked many times to open a shop in the town, but he says he likes the van, and he likes to be able to drive home when he is done.

In the spring the river rises with the rain from the mountains. Most years it stays inside its banks, but every few years it comes over the wall and into the lower streets. The people who live there keep sandbags in their cellars and move their furniture upstairs when the warnings come. After the water goes down they clean the mud out of their houses, paint the walls again and carry on. Some of them have done this five or six times. They say the river was there first, and that it only wants its old path back for a while.

The school is at the other end of the town, near the station. Trains stop there four times a day, two going north to the city and two going south along the coast. In the afternoon the students who live in the villages wait on the platform with their bags, talking and laughing and looking at their phones. The station master knows most of them by name, and he calls their parents when one of them misses the last train.

What makes a small town work? It is not only the shops and the school and the trains. It is the way people notice each other. When someone is ill, a neighbour brings soup. When a fence falls down in a storm, two or three people turn up with tools and fix it before the owner has asked. When a child wins a prize, the whole street hears about it by the evening. None of this is written down anywhere, and nobody is paid to do it, but everyone knows that it is part of living there.

Of course, not everything is easy. Young people leave for the city to study and to find work, and many of them do not come back. The mills closed long ago, and the big brick buildings by the river stood empty for years. Some of them have been turned into flats, and one has become a workshop where people build boats by hand, the old way, with wood and copper nails. Visitors come to watch them work, and in the summer the boats are raced on the river.

The weather changes quickly in the valley. A bright morning can turn into a grey afternoon, and a storm can come over the hills in less than an hour. Farmers watch the sky and the birds, and they say they can smell the rain before it arrives. They are usually right. When the wind turns and comes from the west, they bring the animals in and close the barn doors, and then they sit in the kitchen with a cup of tea and wait.

In the autumn the trees on the hills turn red and gold, and people walk up the old paths to see the view. From the top you can see the whole town, the river with its two bends, the bridge, the church and the library, and far away the grey line of the sea. On a clear day you can even see the ships. Clara walks up there every Sunday, whatever the weather, and she says it is the best way she knows to think about nothing at all.

Winter is long and dark. The lamps in the library are lit by four o'clock, and the windows glow yellow over the square. More people come in during the winter than at any other time of the year, to read, to use the computers, or just to sit somewhere warm. Clara puts a kettle on in the back room and makes tea for anyone who wants it. She says a library should be the most generous building in a town, because it gives away the most valuable things and asks for nothing except that you bring them back.

Numbers tell part of the story. The town has about 4,000 people, 3 schools, 2 doctors, 1 library and 12 shops around the square. The river is 40 metres wide at the bridge and 6 metres deep after the spring rain. The church clock has been wrong by 5 minutes for as long as anyone can remember, and nobody wants it fixed.

"Why do you stay?" a visitor once asked Clara. She thought about it for a moment and then said, "Because here I can see the whole of a life. I see children learning to read, and then I see them bring their own children in. I see people change their minds, and I see them find what they were looking for, or something better. That is enough for me." The visitor wrote it down in a small notebook, and later he put it in a book about places that people love.

Questions are the start of learning. What is the river made of? Where does the fog come from? How do you build a boat that does not leak? Why does bread rise? Every answer leads to another question, and that is how it should be. The best teachers in the town have always known this, and they do not give answers too quickly. They wait, and they ask another question, and they let the students find the way themselves.
`
