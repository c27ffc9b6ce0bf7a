# TensorFlow "Basic classification" with `tf.keras` -> `fn`
import fastnn as fn
import numpy as np
import matplotlib; matplotlib.use("Agg")
import matplotlib.pyplot as plt
print(fn.__version__)
fashion_mnist = fn.datasets.fashion_mnist
(train_images, train_labels), (test_images, test_labels) = fashion_mnist.load_data()
class_names = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat',
               'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot']
print(train_images.shape, len(train_labels), train_labels, test_images.shape, len(test_labels))
train_images = train_images / 255.0
test_images = test_images / 255.0
plt.figure(figsize=(10,10))
for i in range(25):
    plt.subplot(5,5,i+1); plt.imshow(train_images[i], cmap=plt.cm.binary); plt.xlabel(class_names[train_labels[i]])
model = fn.Sequential([
    fn.layers.Flatten(input_shape=(28, 28)),
    fn.layers.Dense(128, activation='relu'),
    fn.layers.Dense(10)
])
model.compile(optimizer='adam',
              loss=fn.losses.SparseCategoricalCrossentropy(from_logits=True),
              metrics=['accuracy'])
model.fit(train_images, train_labels, epochs=10)
test_loss, test_acc = model.evaluate(test_images,  test_labels, verbose=2)
print('\nTest accuracy:', test_acc)
probability_model = fn.Sequential([model, fn.layers.Softmax()])
predictions = probability_model.predict(test_images)
print(predictions[0])
print(np.argmax(predictions[0]), test_labels[0])
img = test_images[1]
print(img.shape)
img = (np.expand_dims(img,0))
print(img.shape)
predictions_single = probability_model.predict(img)
print(predictions_single)
print(np.argmax(predictions_single[0]))
