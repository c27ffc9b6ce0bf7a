import numpy as np
from fastnn.datasets import fashion_mnist
from fastnn.models import Sequential
from fastnn.layers import Dense, Activation
from fastnn.optimizers import SGD
from fastnn.utils import to_categorical
(x_train, y_train), (x_test, y_test) = fashion_mnist.load_data()
x_train = x_train.reshape(60000, 784).astype('float32') / 255
x_test = x_test.reshape(10000, 784).astype('float32') / 255
Y_train = to_categorical(y_train, 10)
Y_test = to_categorical(y_test, 10)
model = Sequential()
model.add(Dense(500, input_shape=(784,)))
model.add(Activation('sigmoid'))
model.add(Dense(500))
model.add(Activation('sigmoid'))
model.add(Dense(10))
model.add(Activation('softmax'))
model.summary()
model.compile(loss='categorical_crossentropy', optimizer=SGD(lr=0.1), metrics=['accuracy'])
history = model.fit(x_train, Y_train, batch_size=100, epochs=2, verbose=2, validation_data=(x_test, Y_test))
score = model.evaluate(x_test, Y_test, verbose=0)
print('Test score:', score[0]); print('Test accuracy:', score[1])
print(history.history.keys())
model.save('course.h5')
from fastnn.models import load_model
print(load_model('course.h5').evaluate(x_test, Y_test, verbose=0))
